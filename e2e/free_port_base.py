"""Prints a port base whose shop ports are all free on 127.0.0.1: the six
services at BASE+1..6, the balancer at BASE+80 and its admin listener at
BASE+81. Bases lie between 20000 and 32000, below the kernel's ephemeral
range, so outgoing connections cannot take them. Used by every script that
starts a shop with the launcher (e2e/shop.sh, loadgen/shop.sh)."""
import random
import socket

OFFSETS = (1, 2, 3, 4, 5, 6, 80, 81)


def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


for _ in range(200):
    base = random.randrange(200, 320) * 100
    if all(free(base + o) for o in OFFSETS):
        print(base)
        break
else:
    raise SystemExit("no free port base between 20000 and 32000")
