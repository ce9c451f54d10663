"""Cost of many concurrent password checks, as in a connection storm: KDF slots limited vs. not.

    python -m bench.kdf_concurrency [N]

Prints wall time, CPU time and peak RSS for N concurrent ``auth.verify`` calls, once with the
gateway's limit (one KDF per core at a time) and once without, each in a fresh process.
"""

import resource
import subprocess
import sys
import threading
import time


def run(limited: bool, n: int) -> str:
    from ocpp_gw import auth
    from ocpp_gw.auth import passwords
    if not limited:
        passwords._KDF_SLOTS = threading.BoundedSemaphore(n)
    stored = auth.hash_password("a-charger-password")
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    threads = [threading.Thread(target=auth.verify, args=(stored, "a-charger-password"))
               for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (f"{'limited' if limited else 'unlimited':9}  N={n}  wall {time.monotonic() - start:6.2f} s  "
            f"user {after.ru_utime - before.ru_utime:6.2f} s  sys {after.ru_stime - before.ru_stime:5.2f} s  "
            f"peak RSS {after.ru_maxrss / 1024:5.0f} MiB")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        print(run(sys.argv[2] == "limited", int(sys.argv[1])))
    else:
        n = sys.argv[1] if len(sys.argv) > 1 else "400"
        for mode in ("unlimited", "limited"):
            subprocess.run([sys.executable, "-m", "bench.kdf_concurrency", n, mode], check=True)
