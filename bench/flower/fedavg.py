"""Flower FedAvg baseline on partitions exported by `fedchain-bench e2e`.

Same model family as fedchain-models' DenseModel, in numpy: logistic regression (one sigmoid
logit for 2 classes, softmax otherwise) or a ReLU MLP with the same hidden widths, the same flat
parameter layout (per layer: weight [out][in] row-major, then bias) and the SAME initial
parameters (init.csv, written by fedchain). Local training: SGD with momentum and weight decay
exactly as DenseModel (v = m v + g + wd w; w -= lr v; velocity reset every round), mean loss per
minibatch, a fresh shuffle per epoch (numpy's RNG, not ChaCha8, so batch orders differ).
Aggregation: Flower's FedAvg weighted by sample counts, every client every round.

A Flower server process (this process) and one client process per hospital talk gRPC on
loopback (flwr's start_server / start_client; no ray, no simulation engine).

    python fedavg.py --partitions DIR --out result.json
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np


def load_csv(path):
    a = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    return a[:, 1:].astype(np.float32), a[:, 0].astype(np.int64)


class Dense:
    """DenseModel's forward, loss and gradient over a flat float32 parameter vector."""

    def __init__(self, meta):
        f, c = meta["num_features"], meta["num_classes"]
        self.binary = c == 2
        out = 1 if self.binary else c
        widths = [f] + list(meta["hidden"]) + [out]
        self.layers = []
        off = 0
        for i, o in zip(widths[:-1], widths[1:]):
            self.layers.append((i, o, off))
            off += i * o + o
        self.size = off

    def unpack(self, p):
        return [
            (p[off : off + i * o].reshape(o, i), p[off + i * o : off + i * o + o])
            for i, o, off in self.layers
        ]

    def forward(self, p, x):
        acts = [x]
        ws = self.unpack(p)
        for k, (w, b) in enumerate(ws):
            z = acts[-1] @ w.T + b
            if k + 1 < len(ws):
                z = np.maximum(z, 0.0)
            acts.append(z)
        return acts

    def loss_grad(self, p, x, y):
        acts = self.forward(p, x)
        logits = acts[-1]
        n = len(y)
        if self.binary:
            z = logits[:, 0].astype(np.float64)
            t = y.astype(np.float64)
            loss = np.sum(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
            delta = (1.0 / (1.0 + np.exp(-z)) - t)[:, None]
        else:
            z = logits.astype(np.float64)
            m = z.max(axis=1, keepdims=True)
            lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
            loss = np.sum(lse[:, 0] - z[np.arange(n), y])
            delta = np.exp(z - lse)
            delta[np.arange(n), y] -= 1.0
        delta = (delta / n).astype(np.float32)
        grad = np.zeros_like(p)
        ws = self.unpack(p)
        for k in range(len(self.layers) - 1, -1, -1):
            i, o, off = self.layers[k]
            grad[off : off + i * o] = (delta.T @ acts[k]).ravel()
            grad[off + i * o : off + i * o + o] = delta.sum(axis=0)
            if k > 0:
                delta = (delta @ ws[k][0]) * (acts[k] > 0)
        return loss, grad

    def accuracy(self, p, x, y):
        logits = self.forward(p, x)[-1]
        pred = (logits[:, 0] > 0).astype(np.int64) if self.binary else logits.argmax(axis=1)
        return float(np.mean(pred == y))


def train(model, meta, p, x, y, seed):
    p = p.copy()
    v = np.zeros_like(p)
    lr, mom, wd = meta["lr"], meta["momentum"], meta["weight_decay"]
    batch = max(1, min(meta["batch"], len(y)))
    rng = np.random.default_rng(seed)
    for _ in range(meta["epochs"]):
        order = rng.permutation(len(y))
        for s in range(0, len(y), batch):
            idx = order[s : s + batch]
            _, g = model.loss_grad(p, x[idx], y[idx])
            v = mom * v + g + wd * p
            p = p - lr * v
    return p.astype(np.float32)


def client_main(args):
    import flwr as fl

    meta = json.load(open(os.path.join(args.partitions, "meta.json")))
    model = Dense(meta)
    x, y = load_csv(os.path.join(args.partitions, f"hospital-{args.client}.csv"))

    class Hospital(fl.client.NumPyClient):
        def fit(self, parameters, config):
            rnd = int(config.get("round", 0))
            p = train(model, meta, parameters[0], x, y, meta["seed"] * 1000 + rnd * 100 + args.client)
            return [p], len(y), {}

    fl.client.start_client(
        server_address=args.server, client=Hospital().to_client(), insecure=True
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_main(args):
    import flwr as fl
    from flwr.common import ndarrays_to_parameters

    meta = json.load(open(os.path.join(args.partitions, "meta.json")))
    if meta.get("server_lr", 1.0) != 1.0:
        sys.exit("fedavg.py implements plain FedAvg (server lr 1); meta.json asks for another")
    model = Dense(meta)
    init = np.loadtxt(os.path.join(args.partitions, "init.csv"), dtype=np.float32, ndmin=1)
    if init.size != model.size:
        sys.exit(f"init.csv has {init.size} parameters, the model {model.size}")
    xt, yt = load_csv(os.path.join(args.partitions, "test.csv"))
    n = meta["hospitals"]
    seconds, accuracy = [], []

    def evaluate(server_round, parameters, config):
        acc = model.accuracy(parameters[0], xt, yt)
        if server_round > 0:
            accuracy.append(acc)
            seconds.append(time.perf_counter() - starts[server_round])
        return 0.0, {"accuracy": acc}

    starts = {}

    class TimedFedAvg(fl.server.strategy.FedAvg):
        """FedAvg that notes when a round's work starts: after every client is connected and
        sampled, so the client processes' start-up is not counted in round 1."""

        def configure_fit(self, server_round, parameters, client_manager):
            out = super().configure_fit(server_round, parameters, client_manager)
            starts[server_round] = time.perf_counter()
            return out

    strategy = TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n,
        min_evaluate_clients=0,
        min_available_clients=n,
        initial_parameters=ndarrays_to_parameters([init]),
        evaluate_fn=evaluate,
        on_fit_config_fn=lambda rnd: {"round": rnd},
    )
    addr = f"127.0.0.1:{free_port()}"
    here = os.path.abspath(__file__)
    clients = [
        subprocess.Popen(
            [sys.executable, here, "--partitions", args.partitions, "--client", str(i), "--server", addr],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(n)
    ]
    try:
        fl.server.start_server(
            server_address=addr,
            config=fl.server.ServerConfig(num_rounds=meta["rounds"]),
            strategy=strategy,
        )
    finally:
        for c in clients:
            try:
                c.wait(timeout=30)
            except subprocess.TimeoutExpired:
                c.kill()
    result = {"flwr_version": fl.__version__, "accuracy": accuracy, "seconds": seconds}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"Flower FedAvg: {len(accuracy)} rounds, final accuracy {accuracy[-1] * 100:.2f}%, "
        f"{np.mean(seconds):.3f} s/round (client start-up excluded)"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", required=True)
    ap.add_argument("--out")
    ap.add_argument("--client", type=int)
    ap.add_argument("--server")
    args = ap.parse_args()
    if args.client is not None:
        client_main(args)
    else:
        if not args.out:
            ap.error("--out is required for the server")
        server_main(args)


if __name__ == "__main__":
    main()
