#!/usr/bin/env python3
"""What `mrsort watch` delivers against what `mrsort classify` (and `eval`) settle for whole studies.

Study context (pre/post-contrast T1 from the order of a study's series) is a batch rule: `classify`
sees every series of a study at once. The agent sees series one at a time as they go quiet, and
revises delivered ones when a later series changes the conclusion. This feeds a labelled corpus
(CORPUS/labels.csv with `dir`, `series_uid`, `sequence`; one folder per series) into a running
agent study by study, one series of every study per step, each step once the previous one was
handled, in acquisition order (SeriesNumber) or shuffled, and compares the agent's last decision
per series with the batch classification and with the labels.

usage: benchmarks/study_context.py MRSORT CORPUS [--orders acquisition shuffled] [--work DIR] [--copy]
"""
import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def last_decisions(state):
    result = {}
    path = os.path.join(state, "series.jsonl")
    if os.path.exists(path):
        with open(path) as lines:
            for line in lines:
                try:
                    decision = json.loads(line)
                except json.JSONDecodeError:
                    continue
                result[decision["classification"]["seriesInstanceUID"]] = decision["classification"]["sequence"]
    return result


def wait(condition, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def run_order(mrsort, corpus, labels, meta, order, work, seed, copy=False):
    root = os.path.join(work, order)
    shutil.rmtree(root, ignore_errors=True)
    for folder in ("in", "out", "quarantine"):
        os.makedirs(os.path.join(root, folder))
    config = os.path.join(root, "mrsort.yaml")
    with open(config, "w") as out:
        out.write(f"""state_directory: {root}/state
rules:
  - name: bench
    watch: {root}/in
    quiet_seconds: 0.5
    action: move
    output: {root}/out
    layout: "{{StudyKey}}/{{SeriesKey}}_{{sequence}}/{{SOPInstanceUID}}.dcm"
    quarantine: {root}/quarantine
""")
    log = open(os.path.join(root, "agent.log"), "w")
    agent = subprocess.Popen([mrsort, "watch", "--config", config], stderr=log)
    state = os.path.join(root, "state")
    if not wait(lambda: "watching" in open(log.name).read(), 60):
        agent.kill()
        sys.exit(f"{order}: the agent did not start; see {log.name}")
    studies = {}
    for row in labels:
        # By StudyInstanceUID, as `classify` read it (real sets keep one series per folder).
        studies.setdefault(meta[row["series_uid"]][0], []).append(row)
    rng = random.Random(seed)
    for rows in studies.values():
        if order == "shuffled":
            rng.shuffle(rows)
        else:
            rows.sort(key=lambda row: meta[row["series_uid"]][1])
    fed = set()
    started = time.time()
    for step in range(max(len(rows) for rows in studies.values())):
        for study, rows in studies.items():
            if step >= len(rows):
                continue
            row = rows[step]
            source = os.path.join(corpus, row["dir"])
            target = os.path.join(root, "in", row["dir"].replace("/", "_"))
            os.makedirs(target)
            for name in sorted(os.listdir(source)):
                (shutil.copy2 if copy else os.link)(os.path.join(source, name), os.path.join(target, name))
            fed.add(row["series_uid"])
        if not wait(lambda: fed <= set(last_decisions(state)), 300):
            print(f"{order}: step {step}: series not handled in 300 s", file=sys.stderr)
    # Revisions follow the last step: wait until decisions stop changing.
    previous, stable_since = None, time.time()
    while time.time() - stable_since < 3:
        current = (os.path.getsize(os.path.join(state, "series.jsonl")), os.path.getsize(os.path.join(state, "audit.jsonl")))
        if current != previous:
            previous, stable_since = current, time.time()
        time.sleep(0.2)
    seconds = time.time() - started
    agent.send_signal(signal.SIGTERM)
    agent.wait(60)
    revisions = sum(1 for line in open(os.path.join(state, "audit.jsonl")) if '"action":"relabel"' in line)
    return last_decisions(state), revisions, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mrsort")
    parser.add_argument("corpus")
    parser.add_argument("--orders", nargs="+", default=["acquisition", "shuffled"], choices=["acquisition", "shuffled"])
    parser.add_argument("--work")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copy", action="store_true", help="copy the files instead of hard-linking them")
    arguments = parser.parse_args()
    mrsort = os.path.abspath(arguments.mrsort)
    work = arguments.work or tempfile.mkdtemp(prefix="mrsort-study-context.")
    with open(os.path.join(arguments.corpus, "labels.csv")) as handle:
        labels = list(csv.DictReader(handle))
    truth = {row["series_uid"]: row["sequence"] for row in labels}
    batch_csv = subprocess.run([mrsort, "classify", arguments.corpus, "--csv"], check=True, capture_output=True, text=True).stdout
    batch_rows = list(csv.DictReader(batch_csv.splitlines()))
    batch = {row["series_uid"]: row["sequence"] for row in batch_rows}
    meta = {row["series_uid"]: (row["study_uid"], int(row["series_number"] or 0)) for row in batch_rows}
    # Labelled series that `classify` found (a real set may hold unreadable ones).
    labels = [row for row in labels if row["series_uid"] in meta]
    truth = {row["series_uid"]: row["sequence"] for row in labels}
    t1 = {uid for uid, sequence in truth.items() if sequence.startswith(("t1", "vibe"))}

    def accuracy(answers, subset):
        right = sum(1 for uid in subset if answers.get(uid) == truth[uid])
        return f"{right}/{len(subset)} ({right / max(1, len(subset)):.3f})"

    multi = sum(1 for study in {meta[uid][0] for uid in truth} if sum(1 for uid in truth if meta[uid][0] == study) > 1)
    print(f"corpus: {arguments.corpus}, {len(truth)} labelled series in {len({meta[uid][0] for uid in truth})} studies "
          f"({multi} with more than one), {len(t1)} of the T1 family; work: {work}")
    print(f"batch `mrsort classify` (whole studies): all {accuracy(batch, truth)}, T1 family {accuracy(batch, t1)}")
    print("| order | agent = batch | agent accuracy | agent T1-family accuracy | revisions | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for order in arguments.orders:
        agent, revisions, seconds = run_order(mrsort, arguments.corpus, labels, meta, order, work, arguments.seed, arguments.copy)
        same = sum(1 for uid in truth if agent.get(uid) == batch.get(uid))
        print(f"| {order} | {same}/{len(truth)} | {accuracy(agent, truth)} | {accuracy(agent, t1)} | {revisions} | {seconds:.0f} |")
        for uid in sorted(truth):
            if agent.get(uid) != batch.get(uid):
                print(f"    differs: {uid} label {truth[uid]} batch {batch.get(uid)} agent {agent.get(uid)}")


if __name__ == "__main__":
    main()
