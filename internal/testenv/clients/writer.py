# A redis-py writer with the library's default settings: discovers the
# master through the Sentinels (Sentinel(...).master_for) and writes
# SET + WAIT 1 in a loop. One line per write acknowledged by a replica:
#   A <key> <issued unix ns> <acknowledged unix ns>
# "S ..." (same fields) per write the master took that no replica
# acknowledged in time, and "E <error>" per failed attempt. Arguments: sentinels (host:port,...),
# master name, password, Sentinel password, key prefix.
import sys
import time

from redis.sentinel import Sentinel

sentinels, name, password, sentinel_password, prefix = sys.argv[1:6]
hosts = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sentinels.split(",")]
s = Sentinel(hosts, sentinel_kwargs={"password": sentinel_password or None}, password=password)
r = s.master_for(name)
out = sys.stdout
i = 0
while True:
    i += 1
    key = "%s:%d" % (prefix, i)
    issued = time.time_ns()
    try:
        p = r.pipeline(transaction=False)
        p.set(key, i)
        p.execute_command("WAIT", 1, 500)
        res = p.execute()
        if int(res[1]) >= 1:
            out.write("A %s %d %d\n" % (key, issued, time.time_ns()))
        else:
            out.write("S %s %d %d\n" % (key, issued, time.time_ns()))
        out.flush()
    except Exception as e:  # the application's retry: try the next write
        out.write("E %s\n" % type(e).__name__)
        out.flush()
        time.sleep(0.005)
