"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd started as daemons, no systemd.

``start_cluster(folder)`` writes a ``slurm.conf`` for this machine in
``folder`` (state, spool, logs and pid files there too, ports chosen free),
starts the daemons and waits until the node is idle; :meth:`Cluster.stop`
cancels what is left and stops them by their pid files.  It raises
:class:`Unavailable` (a reason to skip the test) when Slurm is not installed
(Debian: ``apt-get install slurmctld slurmd slurm-client munge``), when not
run as root, or when the daemons do not come up.

Client commands get the configuration through ``SLURM_CONF`` (:attr:`Cluster.env`),
so nothing in ``/etc/slurm`` is touched; jobs inherit that environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["Cluster", "Unavailable", "start_cluster"]

_DAEMONS = ("slurmctld", "slurmd", "munged")
_CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "munge", "unmunge")
_MUNGE_RUN = Path("/run/munge")
_MUNGE_KEY = Path("/etc/munge/munge.key")


class Unavailable(RuntimeError):
    """Slurm cannot run here; the message says why."""


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """A process that runs (a zombie waiting for its parent does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait(predicate, seconds: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


class Cluster:
    """A running one-node cluster; run client commands with :meth:`run` (or any command with :attr:`env`)."""

    def __init__(self, base: Path, node: str, kill_wait: int) -> None:
        self.base, self.node, self.kill_wait = base, node, kill_wait
        self.conf = base / "etc" / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._munged: int | None = None  # the munged this cluster started, if it had to

    def run(self, *args: str, check: bool = True, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("env", self.env)
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)}: exit {result.returncode}: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def sbatch(self, *args: str, **kwargs) -> str:
        """Submit a job (``--parsable``); returns its id."""
        return self.run("sbatch", "--parsable", *args, **kwargs).stdout.strip().split(";")[0]

    def jobs(self, job_id: str) -> list[tuple[str, str]]:
        """The (task id, state) of a job's tasks that the controller still lists as pending or running."""
        out = self.run("squeue", "-h", "-j", job_id, "-t", "PD,R,CG,S", "-o", "%i %T", check=False).stdout
        return [tuple(line.split()[:2]) for line in out.splitlines() if line.strip()]

    def wait_gone(self, job_id: str, seconds: float) -> bool:
        """Wait until no task of the job is pending, running or completing."""
        return _wait(lambda: not self.jobs(job_id), seconds, every=0.5)

    def log_tail(self, lines: int = 15) -> str:
        text = []
        for log in sorted((self.base / "log").glob("*.log")):
            text += [f"--- {log.name}", *log.read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(text)

    # ------------------------------------------------------------------------------------------ start / stop
    def _start(self) -> None:
        self._write_conf()
        self._start_munge()
        self._daemon("slurmctld", "-f", str(self.conf), "-c", "-i")  # -c: no old job state
        if not _wait(lambda: "UP" in self.run("scontrol", "ping", check=False).stdout, 20):
            raise Unavailable(f"slurmctld does not answer\n{self.log_tail()}")
        self._daemon("slurmd", "-f", str(self.conf))

        def idle() -> bool:
            return self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).stdout.strip() == "idle"

        if not _wait(idle, 30):
            state = self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).stdout.strip()
            raise Unavailable(f"the node is {state or 'unknown'!r}, not idle, after 30 s\n{self.log_tail()}")

    def _write_conf(self) -> None:
        for sub in ("etc", "state", "spool", "log", "run"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 * 9 // 10
        b = self.base
        self.conf.write_text(
            f"""ClusterName=textsleeptest
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again
AuthInfo=cred_expire=10
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={b}/state
SlurmdSpoolDir={b}/spool
SlurmctldPidFile={b}/run/slurmctld.pid
SlurmdPidFile={b}/run/slurmd.pid
SlurmctldLogFile={b}/log/slurmctld.log
SlurmdLogFile={b}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# seconds between TERM and KILL at a time limit or scancel
KillWait={self.kill_wait}
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""
        )
        # slurmd always loads a cgroup plugin: with no cgroup.conf it detects v1/hybrid hosts itself;
        # on a pure v2 host, tell it not to ask systemd for a scope
        cgroup = self.base / "etc" / "cgroup.conf"
        fs = subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True, text=True).stdout.strip()
        if fs == "cgroup2fs":
            cgroup.write_text("CgroupPlugin=cgroup/v2\nIgnoreSystemd=yes\n")

    def _munge_works(self) -> bool:
        token = subprocess.run(["munge", "-n"], capture_output=True)
        return (
            token.returncode == 0
            and subprocess.run(["unmunge"], input=token.stdout, capture_output=True).returncode == 0
        )

    def _start_munge(self) -> None:
        if self._munge_works():
            return  # a munged already runs on this machine: share it
        if not _MUNGE_KEY.is_file():
            raise Unavailable(f"no munge key ({_MUNGE_KEY}); the munge package's setup makes one")
        _MUNGE_RUN.mkdir(parents=True, exist_ok=True)
        shutil.chown(_MUNGE_RUN, "munge", "munge")
        started = subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], capture_output=True, text=True)
        if started.returncode != 0:
            raise Unavailable(f"munged did not start: {started.stderr.strip()}")
        if not _wait(self._munge_works, 10, every=0.1):
            raise Unavailable("munged started but munge -n | unmunge fails")
        pid_file = _MUNGE_RUN / "munged.pid"
        self._munged = int(pid_file.read_text()) if pid_file.is_file() else None

    def _daemon(self, name: str, *args: str) -> None:
        started = subprocess.run([_which(name), *args], capture_output=True, text=True, env=self.env)
        if started.returncode != 0:
            raise Unavailable(f"{name} did not start: {started.stderr.strip()}\n{self.log_tail()}")

    def stop(self) -> None:
        """Cancel every job, then stop the daemons this cluster started (TERM, KILL after 10 s)."""
        pid_file = self.base / "run" / "slurmctld.pid"
        if pid_file.is_file() and _alive(int(pid_file.read_text() or 0)):
            self.run("scancel", "--full", "--quiet", "--partition=debug", check=False)
            _wait(lambda: not self.run("squeue", "-h", check=False).stdout.strip(), 15, every=0.3)
        pids = [self.base / "run" / f"{name}.pid" for name in ("slurmd", "slurmctld")]
        for pid in [int(f.read_text() or 0) for f in pids if f.is_file()] + [self._munged or 0]:
            if pid and _alive(pid):
                os.kill(pid, signal.SIGTERM)
                if not _wait(lambda: not _alive(pid), 10, every=0.1):
                    os.kill(pid, signal.SIGKILL)
        self._munged = None


def start_cluster(base: str | os.PathLike, *, kill_wait: int = 30) -> Cluster:
    """Start a one-node cluster whose files live in ``base``; :class:`Unavailable` says why it cannot."""
    missing = [name for name in (*_DAEMONS, *_CLIENTS, "runuser") if _which(name) is None]
    if missing:
        raise Unavailable(
            f"Slurm is not installed (no {', '.join(missing)}); apt-get install slurmctld slurmd slurm-client munge"
        )
    if os.geteuid() != 0:
        raise Unavailable("a one-node Slurm runs its daemons as root; these tests are not run as root")
    cluster = Cluster(Path(base), socket.gethostname().split(".")[0], kill_wait)
    try:
        cluster._start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
