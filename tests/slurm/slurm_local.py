"""Start and stop a throw-away single-node SLURM (munged + slurmctld + slurmd) on localhost.

Everything lives in one folder (munge key and socket, slurm.conf, state, spool, logs, PID files);
the daemons listen on free ports and are found through ``SLURM_CONF``, so a system SLURM, if
any, is left alone. Needs root and the Debian packages installed by ``install_slurm.sh``.

Used by the pytest session fixture in ``test_sweep_slurm.py``; also a script::

    python tests/slurm/slurm_local.py start /tmp/slurm   # prints: export SLURM_CONF=...
    python tests/slurm/slurm_local.py stop /tmp/slurm
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL = HERE / "install_slurm.sh"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")


def _which(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)


def environment_problem() -> str | None:
    """Why a local SLURM cannot be set up here (``None`` when it can)."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    if os.geteuid() != 0:
        return "not running as root (slurmd and munged need root)"
    if not Path("/etc/debian_version").exists() and all(_which(b) is None for b in BINARIES):
        return "not Debian/Ubuntu and SLURM is not installed"
    return None


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if _which(b) is None]


def ensure_installed() -> None:
    """Run ``install_slurm.sh`` (idempotent apt install) when a binary is missing."""
    if not missing_binaries():
        return
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or missing_binaries():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"install_slurm.sh failed (rc {proc.returncode}): {' | '.join(tail)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalSlurm:
    root: Path
    conf: Path
    cpus: int

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def pid_files(self) -> list[Path]:
        return [self.root / "slurmd.pid", self.root / "slurmctld.pid", self.root / "munge" / "munged.pid"]

    def run(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, env=self.env, timeout=timeout)

    def node_state(self) -> str:
        p = self.run("sinfo", "-h", "-N", "-o", "%T")
        return p.stdout.strip() if p.returncode == 0 else f"error: {p.stderr.strip()}"

    def jobs(self) -> list[str]:
        p = self.run("squeue", "-h", "-o", "%i %T %j")
        return [ln for ln in p.stdout.splitlines() if ln.strip()]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return max(1024, int(line.split()[1]) // 1024 - 1024)
    return 4096


SLURM_CONF = """\
# written by tests/slurm/slurm_local.py: single node on localhost, everything under {root}
ClusterName=tmetest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
NodeName=localhost NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _start_daemon(args: list[str], pid_file: Path, log: Path, timeout: float = 15) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed (rc {proc.returncode}): {proc.stderr.strip()[-300:]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            return
        time.sleep(0.05)
    tail = log.read_text()[-300:] if log.exists() else ""
    raise RuntimeError(f"{Path(args[0]).name} wrote no PID file {pid_file}: {tail}")


def start(root: str | Path, cpus: int = 2, timeout: float = 30) -> LocalSlurm:
    """Start munged, slurmctld and slurmd under ``root``; wait until the node is idle."""
    root = Path(root).resolve()
    for d in ("state", "spool", "log", "munge"):
        (root / d).mkdir(parents=True, exist_ok=True)
    munge = root / "munge"
    munge.chmod(0o711)
    key = munge / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    _start_daemon(
        [
            _which("munged") or "munged",
            f"--socket={munge / 'munge.socket'}",
            f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={munge / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
            "--force",
        ],
        munge / "munged.pid",
        munge / "munged.log",
    )
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            root=root,
            ctld_port=_free_port(),
            d_port=_free_port(),
            host=socket.gethostname(),
            cpus=cpus,
            mem=_memory_mb(),
        )
    )
    s = LocalSlurm(root, conf, cpus)
    try:
        _start_daemon(
            [_which("slurmctld") or "slurmctld", "-c", "-f", str(conf)],
            root / "slurmctld.pid",
            root / "log" / "slurmctld.log",
        )
        _start_daemon([_which("slurmd") or "slurmd", "-f", str(conf)], root / "slurmd.pid", root / "log" / "slurmd.log")
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = s.node_state()
            if state in ("idle", "mixed", "allocated"):
                return s
            time.sleep(0.2)
        raise RuntimeError(f"node not idle after {timeout:.0f} s (state {state!r}); see {root / 'log'}")
    except BaseException:
        stop(s)
        raise


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has exited


def stop(s: LocalSlurm, timeout: float = 10) -> None:
    """Cancel jobs, then stop slurmd, slurmctld and munged by their PID files."""
    with contextlib.suppress(Exception):
        s.run("scancel", "--full", "--user", "root", timeout=10)
    for pid_file in s.pid_files():
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            pid_file.unlink()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__)
        return 2
    root = Path(argv[2])
    if argv[1] == "start":
        problem = environment_problem()
        if problem:
            print(f"cannot start SLURM: {problem}", file=sys.stderr)
            return 1
        ensure_installed()
        s = start(root)
        print(f"export SLURM_CONF={s.conf}")
        return 0
    stop(LocalSlurm(root.resolve(), root.resolve() / "slurm.conf", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
