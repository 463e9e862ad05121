# case: predict another session's random numbers (the zygote's generator state is copied into every fork)
# defence: every session reseeds Python's random and numpy's global generator after the fork
# expect: differs-between-sessions
# note: `pycell run` starts a zygote per run, so this pair only proves the reseed when both
#       sessions come from one pool (server / multi-session repl); see tests/security/README.md
import os
import random
import uuid

import numpy as np

print("numpy-global", np.random.random(), np.random.randint(0, 2**62))
print("numpy-rng", np.random.default_rng().integers(0, 2**62))
print("python-random", random.random(), random.getrandbits(64))
print("urandom", os.urandom(16).hex())
print("uuid4", uuid.uuid4())
