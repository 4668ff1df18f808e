"""What machine a benchmark ran on: every bench prints this beside its numbers."""

import os
import platform


def cpu_model():
    """The CPU model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info():
    """CPU, cores, load average and Python, as a dict (the load distorts every timing here)."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average": list(os.getloadavg()),
            "python": platform.python_version()}


def machine_description():
    """One line: CPU model, cores, memory, Python and OS."""
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            memory = ", %.0f GiB RAM" % (int(f.readline().split()[1]) / 2 ** 20)
    except (OSError, ValueError, IndexError):
        pass
    return "%s, %d cores%s, Python %s, %s" % (cpu_model(), os.cpu_count() or 0, memory,
                                              platform.python_version(), platform.platform())
