"""A user's own k-fold script, written for a Mac ("mps" hard-coded), as spot-sweep runs it unchanged but for
one patch (sweeps/own-script.json). It ranks documents for synthetic queries with a small linear model,
5-fold CV, and writes results/metrics.json with an nDCG@10 mean and per-fold values.

Resume: after each fold it writes the fold's score to $SPOT_SWEEP_CHECKPOINT_DIR/folds.json (atomically: a
temporary name, then a rename); on start it reads that file and goes on from the next fold. On SIGTERM (a spot
notice, a stop) it finishes nothing more, keeps what it has and exits 75.
"""

import json
import math
import os
import random
import signal
import sys
import time

import torch
import tinyreq

device = "mps"
FOLDS = 5
SECONDS_PER_FOLD = float(os.environ.get("OWN_SCRIPT_SECONDS_PER_FOLD", "0"))
stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)

checkpoint_dir = os.environ.get("SPOT_SWEEP_CHECKPOINT_DIR", "checkpoints")
os.makedirs(checkpoint_dir, exist_ok=True)
state_file = os.path.join(checkpoint_dir, "folds.json")
scores = json.load(open(state_file)) if os.path.exists(state_file) else []
print(f"resuming at fold {len(scores)} of {FOLDS}" if scores else "starting at fold 0", flush=True)
print(f"machine: {os.environ.get('SPOT_SWEEP_INSTANCE_TYPE')} gpus={os.environ.get('SPOT_SWEEP_GPUS')}", flush=True)
batch_size = 256 if os.environ.get("SPOT_SWEEP_INSTANCE_TYPE") == "p3.2xlarge" else 512

rng = random.Random(0)
queries = [[rng.gauss(0, 1) for _ in range(8)] for _ in range(60)]
docs = [[q[i] + rng.gauss(0, 0.8) for i in range(8)] for q in queries]


def ndcg_at_10(ranked_relevance):
    dcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ranked_relevance[:10]))
    return dcg  # one relevant document per query: the ideal DCG is 1


for fold in range(len(scores), FOLDS):
    if stopping:
        print(f"SIGTERM: stopping before fold {fold}; {len(scores)} fold(s) kept", flush=True)
        sys.exit(75)
    test = [i for i in range(len(queries)) if i % FOLDS == fold]
    train = [i for i in range(len(queries)) if i % FOLDS != fold]
    w = torch.eye(8, device=device, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.05)
    q = torch.tensor([queries[i] for i in train], device=device)
    d = torch.tensor([docs[i] for i in train], device=device)
    for _ in range(30):
        logits = (q @ w) @ d.T
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(train), device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    all_docs = torch.tensor(docs, device=device)
    total = 0.0
    for i in test:
        s = (torch.tensor(queries[i], device=device) @ w) @ all_docs.T
        order = torch.argsort(s, descending=True).tolist()
        total += ndcg_at_10([1.0 if j == i else 0.0 for j in order])
    scores.append(tinyreq.round4(total / len(test)))
    tmp = state_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(scores, fh)
    os.replace(tmp, state_file)
    print(f"fold {fold}: nDCG@10 {scores[-1]} (batch size {batch_size})", flush=True)
    time.sleep(SECONDS_PER_FOLD)

os.makedirs("results", exist_ok=True)
with open(os.path.join("results", "metrics.json"), "w") as fh:
    json.dump({"ndcg@10": sum(scores) / len(scores), "folds": scores}, fh)
print("done", flush=True)
