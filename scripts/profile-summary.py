"""Where a process's perf samples fall: reads `perf script -F comm,tid,ip,sym,dso` (with call
graphs) on stdin and prints each category's share of the samples. A sample counts once: the log
thread's as such; a kernel sample by what its kernel stack is doing (and in which system call);
a user sample by the function it is in (works with frame-pointer call graphs too)."""

import collections
import re
import sys

SWITCH = re.compile(r"^(__schedule|schedule|finish_task_switch|schedule_hrtimeout_range|do_nanosleep|futex_wait)")
WAKE = re.compile(r"^(try_to_wake_up|__wake_up|ttwu_|wake_up_q|default_wake_function|pollwake|ep_poll_callback|sock_def_readable|unix_write_space)")
SYSCALL = re.compile(r"^(?:__(?:x64|se)_sys_|ksys_)(\w+)")

def categorize(comm, kernel, user):
    if comm.startswith("bulkhead-log"):
        return "log thread (audit line formatting and stderr writes)"
    syscall = next((m.group(1) for f in kernel if (m := SYSCALL.match(f))), None)
    if kernel:
        if "exit_to_user_mode_loop" in kernel:
            return "kernel: preempted on the way out of a system call (the woken peer runs)"
        if kernel[0] == "_raw_spin_unlock_irqrestore" or any(WAKE.match(f) for f in kernel):
            return f"kernel: waking the peer (in {syscall or 'interrupt'})"
        if any(SWITCH.match(f) for f in kernel):
            return f"kernel: sleeping/switching (in {syscall or 'interrupt/preemption'})"
        if any(f.startswith(("tcp_", "ip_", "__ip_", "__tcp", "net_rx", "__netif", "process_backlog", "loopback")) for f in kernel):
            return f"kernel: TCP/IP loopback (in {syscall or 'softirq'})"
        if syscall:
            return f"kernel: other work in {syscall}"
        return "kernel: interrupts, timers, page faults"
    leaf, dso = user[0] if user else ("?", "?")
    if "libc" in dso:
        return "user: libc (copies, allocation, system call wrappers)"
    if "vdso" in dso:
        return "user: clock reads (vdso)"
    if re.search(r"hyper|httparse|^<?http::", leaf):
        return "user: hyper (HTTP parse/encode, connection)"
    if re.search(r"serde", leaf):
        return "user: JSON (serde_json)"
    if re.search(r"tokio|mio::", leaf):
        return "user: tokio/mio (scheduling tasks, timers, I/O readiness)"
    if re.search(r"tracing|logging", leaf):
        return "user: logging on the runtime thread (tracing, deferral)"
    if "bulkhead" in leaf:
        return "user: bulkhead's own code"
    return "user: Rust core/alloc/std (futures glue, collections, fmt)"


def samples(lines):
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif line[0] in " \t":
            parts = line.split(None, 1)
            if len(parts) == 2:
                sym, _, dso = parts[1].rpartition(" (")
                frames.append((sym, dso.rstrip(")\n")))
        else:
            comm = line.split()[0]
    if comm is not None:
        yield comm, frames


counts = collections.Counter()
total = 0
for comm, frames in samples(sys.stdin):
    kernel = [sym for sym, dso in frames if "kernel" in dso]
    # frames are leaf first; kernel frames sit above (before) the user ones
    user = [(sym, dso) for sym, dso in frames if "kernel" not in dso]
    counts[categorize(comm, kernel, user)] += 1
    total += 1
print(f"{total} samples")
for category, n in counts.most_common():
    print(f"{100 * n / max(total, 1):5.1f}%  {category}")
