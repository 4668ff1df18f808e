"""Serving benchmark: serve.py with the real bert-serving-client vs one in-process encoder.

Both sides encode the same real English sentences (gensim's news corpus) with the same model (the
real all-MiniLM-L6-v2, converted by convert_checkpoint.py) and the same settings (REDUCE_MEAN of
layer -2, sentences up to 128 tokens), sent as requests of `--per_request` sentences by 1, 4 and
16 concurrent clients (threads of this process, each with its own BertClient):

- baseline: ONE `BertEncoder` (extract_features.py's encoder API, built once, TensorFlow on all
  cores, batches bucketed by length) called directly by the client threads, i.e. what an
  application gets by loading the model itself;
- serve.py: started as the README says, `-num_worker` workers of `-num_threads` threads each; the
  clients talk to it over ZeroMQ on 127.0.0.1 with the unmodified `bert-serving-client` 1.10.

Measured per configuration, after a warm-up: sentences/s over the whole run, sentences/s per core
(the machine's cores), the p50/p90/p99 latency of single requests, and sentences per CPU-second
(CPU time of every process involved: this one with its client threads, and for serve.py its
frontend and workers, read from /proc). On a machine shared with other work the wall-clock
figures depend on how much of the CPU each side wins; the CPU-second figure much less so. The
vectors of both sides are compared (largest difference). Ratios are against the baseline of the
same run; the load average is printed because other processes distort every number.

    .venv/bin/python bench/bench_serve.py            # about 4 minutes on 2 cores
    .venv/bin/python bench/bench_serve.py --quick    # smoke run, about 2 minutes

Results: a table on stdout and bench/results/serve.json.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
from bert_serving.client import BertClient  # noqa: E402

from bench import machine  # noqa: E402
from bench.bench_inference import convert_minilm, real_sentences  # noqa: E402
from tasks import features as features_lib  # noqa: E402

CONCURRENCY = (1, 4, 16)
_SIZES = {False: dict(sentences=768, per_request=4), True: dict(sentences=192, per_request=4)}


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_clients(requests, num_clients, call):
    """Sends `requests` from `num_clients` threads, each calling `call(client_index, texts)`.

    Returns:
      (seconds for all requests, list of per-request latencies in seconds, results by request).
    """
    latencies = [None] * len(requests)
    results = [None] * len(requests)
    errors = []

    def loop(k):
        try:
            for i in range(k, len(requests), num_clients):
                start = time.perf_counter()
                results[i] = call(k, requests[i])
                latencies[i] = time.perf_counter() - start
        except Exception as e:  # reported after the run; a failed bench must not look fast
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(num_clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    seconds = time.perf_counter() - start
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError("a client failed: %r" % (errors[:1] or "timeout"))
    return seconds, latencies, results


def process_cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads), from /proc; None elsewhere."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    values = [process_cpu_seconds(pid) for pid in pids]
    return None if None in values else sum(values)


def summarize(num_sentences, seconds, latencies, cpu):
    ms = 1000 * np.array(latencies)
    return {"sentences_per_s": num_sentences / seconds,
            "sentences_per_s_per_core": num_sentences / seconds / (os.cpu_count() or 1),
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "seconds": seconds, "cpu_seconds": cpu,
            "sentences_per_cpu_s": num_sentences / cpu if cpu else None}


def measured(num_sentences, pids, requests, num_clients, call):
    """run_clients, with the CPU seconds the processes `pids` spent meanwhile."""
    before = cpu_seconds(pids)
    seconds, latencies, results = run_clients(requests, num_clients, call)
    after = cpu_seconds(pids)
    cpu = after - before if before is not None and after is not None else None
    out = summarize(num_sentences, seconds, latencies, cpu)
    out["vectors"] = np.concatenate(results)
    return out


def bench_baseline(paths, requests, num_sentences):
    """One in-process encoder shared by the client threads."""
    config, vocab, checkpoint = paths
    out = {}
    with features_lib.BertEncoder(config, vocab, checkpoint, max_seq_length=128,
                                  layer_indexes=(-2,), batch_size=256) as encoder:
        encoder.encode(requests[0], "mean")  # warm-up
        for clients in CONCURRENCY:
            out[clients] = measured(num_sentences, [os.getpid()], requests, clients,
                                    lambda k, texts: encoder.encode(texts, "mean"))
    return out


class Server:
    """serve.py in a subprocess, as the README starts it."""

    def __init__(self, model_dir, log_path, *flags):
        self.port, self.port_out = free_port(), free_port()
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "serve.py", "-model_dir=%s" % model_dir, "-port=%d" % self.port,
             "-port_out=%d" % self.port_out, "-max_seq_len=128"] + list(flags),
            cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        with self.client(ignore_all_checks=True, timeout=2000) as bc:
            while time.time() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError("serve.py exited; see %s" % log_path)
                try:
                    if all(w["ready"] for w in bc.server_status["workers"]):
                        return
                except TimeoutError:
                    pass
                time.sleep(0.5)
        raise RuntimeError("serve.py not ready after 600 s; see %s" % log_path)

    def client(self, **kwargs):
        kwargs.setdefault("timeout", 600000)
        return BertClient(port=self.port, port_out=self.port_out, check_length=False, **kwargs)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(120)
        self.log.close()
        return code


def bench_server(model_dir, requests, num_sentences, log_path, flags):
    server = Server(model_dir, log_path, *flags)
    out = {}
    try:
        clients = [server.client() for _ in range(max(CONCURRENCY))]
        clients[0].encode(requests[0])  # warm-up
        pids = [os.getpid(), server.process.pid] + [
            w["pid"] for w in clients[0].server_status["workers"]]
        for num_clients in CONCURRENCY:
            out[num_clients] = measured(num_sentences, pids, requests, num_clients,
                                        lambda k, texts: clients[k].encode(texts))
        out["statistic"] = clients[0].server_status["statistic"]
        for bc in clients:
            bc.close()
    finally:
        out["exit_status"] = server.stop()
    return out


def run(quick=False):
    sizes = _SIZES[quick]
    sentences = real_sentences(sizes["sentences"])
    per = sizes["per_request"]
    requests = [sentences[i:i + per] for i in range(0, len(sentences), per)]
    results = {"machine": machine.machine_info(), "quick": quick, "sentences": len(sentences),
               "per_request": per, "model": "all-MiniLM-L6-v2 (converted), REDUCE_MEAN layer -2"}
    cores = os.cpu_count() or 1
    variants = {"serve_%dx1" % cores: ["-num_worker=%d" % cores, "-num_threads=1"],
                "serve_1x%d" % cores: ["-num_worker=1", "-num_threads=%d" % cores]}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "minilm")
        paths = convert_minilm(model_dir)
        results["baseline"] = bench_baseline(paths, requests, len(sentences))
        for name, flags in variants.items():
            results[name] = bench_server(model_dir, requests, len(sentences),
                                         os.path.join(tmp, name + ".log"), flags)
    for name in variants:
        results[name]["max_abs_diff"] = max(
            float(np.abs(results[name][c]["vectors"] - results["baseline"][c]["vectors"]).max())
            for c in CONCURRENCY)
    for side in ["baseline"] + list(variants):
        for c in CONCURRENCY:
            del results[side][c]["vectors"]
    results["machine"]["load_average_end"] = list(os.getloadavg())
    print_table(results, list(variants))
    os.makedirs(os.path.join(REPO_ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(REPO_ROOT, "bench", "results", "serve.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    return results


def print_table(r, variants):
    print("\nserve.py vs one in-process encoder: %d real sentences, %d per request, %s"
          % (r["sentences"], r["per_request"], r["model"]))
    print("machine: %s; load average %s -> %s\n" % (
        machine.machine_description(), r["machine"]["load_average"],
        [round(x, 2) for x in r["machine"]["load_average_end"]]))
    print("| clients | setup | sentences/s | per core | vs baseline | p50 ms | p90 ms | p99 ms "
          "| sentences per CPU-s | vs baseline |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in CONCURRENCY:
        base = r["baseline"][c]
        for name in ["baseline"] + variants:
            row = r[name][c]
            per_cpu = row["sentences_per_cpu_s"]
            print("| %d | %s | %.1f | %.1f | %.2fx | %.0f | %.0f | %.0f | %s | %s |" % (
                c, "in-process encoder" if name == "baseline" else name, row["sentences_per_s"],
                row["sentences_per_s_per_core"],
                row["sentences_per_s"] / base["sentences_per_s"], row["p50_ms"], row["p90_ms"],
                row["p99_ms"], "%.1f" % per_cpu if per_cpu else "n/a",
                "%.2fx" % (per_cpu / base["sentences_per_cpu_s"])
                if per_cpu and base["sentences_per_cpu_s"] else "n/a"))
    for name in variants:
        stats = r[name]["statistic"]
        print("\n%s: largest difference from the baseline's vectors %.1e; answered %d of %d "
              "requests, %d error replies, exit status %d" % (
                  name, r[name]["max_abs_diff"], stats["num_answered_request"],
                  stats["num_data_request"], stats["num_error_reply"], r[name]["exit_status"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer sentences (smoke run).")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
