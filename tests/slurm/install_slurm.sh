#!/usr/bin/env bash
# Install a single-node SLURM (slurmctld + slurmd + client) and munge from Debian packages.
# Idempotent: does nothing when the binaries are already present. Needs root on Debian/Ubuntu.
# The daemons are configured and started by the pytest session fixture in tests/slurm/conftest.py
# (via tests/slurm/slurm_local.py), not here.
set -euo pipefail

need=(slurmctld slurmd sbatch squeue scancel munged)
missing=0
for b in "${need[@]}"; do
    if ! command -v "$b" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$b" ]; then
        missing=1
    fi
done
if [ "$missing" = 0 ]; then
    echo "install_slurm.sh: SLURM and munge already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install_slurm.sh: not root; cannot install SLURM (the SLURM tests will skip outside CI)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_slurm.sh: no apt-get (not Debian/Ubuntu); cannot install SLURM" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge
echo "install_slurm.sh: installed $(sbatch --version 2>/dev/null || echo slurm)"
