"""Fault-injection soak for `mrsort watch` (run through benchmarks/soak.sh).

Each round: a fresh configuration (state, drop folder, output, review, quarantine), an action in
turn (move, copy, rewrite, rewrite+move, rewrite+copy) and an output file system in turn (the drop
folder's own, then a second one such as the tmpfs /dev/shm), a random set of real series copied
in, `mrsort watch` killed with SIGKILL at random instants while it sorts (1 to SOAK_MAX_KILLS
times), restarted, left to finish, stopped with SIGTERM; then every file in every folder is
counted against the manifest of the sources (SOPInstanceUID → sha256):

  lost        a source SOPInstanceUID found in no folder (drop, output, review, quarantine)
  duplicated  an instance in two places where the action allows one (move: anywhere; copy: two
              delivered copies; rewrite in place: two files in the drop folder), `name~1.dcm` included
  left over   hidden temporaries (`.mrsort-*` …) in any folder or the state directory, files still in
              the drop folder after a move, journal intents left open after the SIGTERM
  corrupted   a delivered (or, for copy and rewrite+copy, a source) file whose bytes differ from the
              source's; for the rewrite actions a file may differ only in SeriesDescription
              (0008,103E), the Original Attributes Sequence (0400,0561) that keeps the old value and the
              group lengths (gggg,0000) that follow from them;
              pixel data and every other element must be equal (pydicom)

Environment: SOAK_SEED (random seed, default 1), SOAK_SERIES (series per round, 16),
SOAK_MAX_KILLS (3), SOAK_KILL_WINDOW ("1.0,3.0": seconds after each start), SOAK_SECOND_FS
(/dev/shm; "none" for one file system), SOAK_REALDATA (../shared/realdata), SOAK_DUPLICATES
(the rule's duplicates policy; the agent's default when unset), SOAK_TIMEOUT (60 s per round),
SOAK_KEEP=1 keeps every round's folders (failing rounds are always kept).
"""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pydicom

warnings.filterwarnings("ignore", module="pydicom")

ACTIONS = ["move", "copy", "rewrite", "rewrite+move", "rewrite+copy"]
EXCLUDED_FOR_REWRITE = {0x0008103E, 0x04000561}
MOVES = {"move", "rewrite+move"}
COPIES = {"copy", "rewrite+copy"}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sop_uid(path):
    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
    except Exception:
        return None


def build_pool(realdata, cache):
    """Series folders of the real data whose SOPInstanceUIDs are unique, with a manifest each."""
    if os.path.exists(cache):
        with open(cache) as handle:
            return json.load(handle)
    seen, pool = {}, {}
    for name in sorted(os.listdir(realdata)):
        folder = os.path.join(realdata, name)
        if not os.path.isdir(folder):
            continue
        files, size = {}, 0
        for root, _, names in os.walk(folder):
            for file in sorted(names):
                path = os.path.join(root, file)
                uid = sop_uid(path)
                if uid is None:
                    continue
                files[uid] = {"path": path, "relative": os.path.relpath(path, realdata), "sha256": sha256(path)}
                size += os.path.getsize(path)
        # Keep rounds quick: no folder above 8 MB.
        if files and size <= 8 << 20:
            pool[name] = files
            for uid in files:
                seen.setdefault(uid, []).append(name)
    shared = {name for names in seen.values() if len(names) > 1 for name in names}
    pool = {name: files for name, files in pool.items() if name not in shared}
    with open(cache, "w") as handle:
        json.dump(pool, handle)
    return pool


def differences(a, b, where=""):
    """The first element (recursively, sequence items included) in which two datasets differ,
    leaving out SeriesDescription, its Original Attributes Sequence and group lengths, which a
    rewrite changes (DCMTK recomputes group lengths when it writes); None when they agree."""
    tags_a = {int(tag) for tag in a.keys() if tag.element != 0} - EXCLUDED_FOR_REWRITE
    tags_b = {int(tag) for tag in b.keys() if tag.element != 0} - EXCLUDED_FOR_REWRITE
    if tags_a != tags_b:
        return f"{where}elements differ: {sorted(f'{t:08X}' for t in tags_a ^ tags_b)[:5]}"
    for tag in sorted(tags_a):
        x, y = a[tag], b[tag]
        name = f"{where}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if x.VR == "SQ" and y.VR == "SQ":
            if len(x.value) != len(y.value):
                return f"{name} item count differs"
            for number, (i, j) in enumerate(zip(x.value, y.value)):
                found = differences(i, j, f"{name}[{number}]")
                if found:
                    return found
        elif x.value != y.value:
            return f"{name} differs"
    return None


def same_except_description(source, delivered):
    """True when two DICOM files differ at most in SeriesDescription and its Original Attributes."""
    try:
        a = pydicom.dcmread(source)
        b = pydicom.dcmread(delivered)
    except Exception as error:
        return False, f"unreadable: {error}"
    if a.file_meta.get("TransferSyntaxUID") != b.file_meta.get("TransferSyntaxUID"):
        return False, "transfer syntax changed"
    found = differences(a, b)
    return found is None, found or ""


class Agent:
    def __init__(self, mrsort, config, log):
        self.log = log
        log.flush()
        self.offset = os.path.getsize(log.name)
        self.process = subprocess.Popen([mrsort, "watch", "--config", config], stdout=log, stderr=log)

    def ready(self):
        """Whether it logged `watching` (signal handlers, recovery and the first scan are done)."""
        with open(self.log.name, "rb") as handle:
            handle.seek(self.offset)
            return b"watching" in handle.read()

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, patience=30):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return "hung"


def walk(folder):
    for root, _, names in os.walk(folder):
        for name in names:
            yield os.path.join(root, name)


def regular_files(folder):
    return [path for path in walk(folder) if not os.path.basename(path).startswith(".")]


def audit_files(state):
    done = set()
    try:
        with open(os.path.join(state, "audit.jsonl")) as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("action") != "error":
                    done.add(record["file"])
    except FileNotFoundError:
        pass
    return done


def open_intents(state):
    intents = {}
    try:
        with open(os.path.join(state, "journal.jsonl")) as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if "intent" in record and record["intent"] is not None:
                    intents[record["id"]] = record["intent"]
                elif record.get("done"):
                    intents.pop(record["id"], None)
    except FileNotFoundError:
        pass
    return list(intents.values())


def progress(action, folders, sources, count):
    """The share of the files already handled, in percent."""
    if action in MOVES:
        done = count - len(regular_files(folders["drop"]))
    elif action in COPIES:
        done = len(regular_files(folders["out"])) + len(regular_files(folders["review"]))
    else:
        done = len(set(sources) & audit_files(folders["state"]))
    return round(100 * done / max(1, count))


def finished(action, folders, sources, count):
    if action in MOVES:
        return not regular_files(folders["drop"])
    if action in COPIES:
        return len(regular_files(folders["out"])) + len(regular_files(folders["review"])) >= count
    return set(sources) <= audit_files(folders["state"])


def configure(folders, action, duplicates):
    lines = [
        f"state_directory: {folders['state']}",
        "rescan_seconds: 3600",
        "rules:",
        "  - name: soak",
        f"    watch: {folders['drop']}",
        "    quiet_seconds: 1",
        f"    action: {action}",
    ]
    if action != "rewrite":
        lines.append(f"    output: {folders['out']}")
    lines += [
        "    minimum_confidence: 0.5",
        f"    review: {folders['review']}",
        f"    quarantine: {folders['quarantine']}",
    ]
    if duplicates:
        lines.append(f"    duplicates: {duplicates}")
    path = os.path.join(folders["root"], "mrsort.yaml")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def count(action, folders, manifest, dropped):
    """The round's findings: {lost, duplicated, leftover, corrupted, quarantined} and details."""
    found = {uid: [] for uid in manifest}
    details = []
    leftover = 0
    corrupted = 0
    places = [("drop", folders["drop"]), ("out", folders["out"]), ("review", folders["review"]),
              ("quarantine", folders["quarantine"])]
    for place, folder in places:
        for path in walk(folder):
            name = os.path.basename(path)
            if name.startswith("."):
                leftover += 1
                details.append(f"left over: temporary {path}")
                continue
            if place == "quarantine" and name.endswith(".reason"):
                continue
            if place == "review" and name == "mrsort-classification.json":
                continue
            uid = sop_uid(path)
            if uid not in manifest:
                corrupted += 1
                details.append(f"corrupted: {path} is no source instance (SOPInstanceUID {uid})")
                continue
            found[uid].append((place, path))
    for path in walk(folders["state"]):
        if os.path.basename(path).startswith("."):
            leftover += 1
            details.append(f"left over: temporary in the state directory {path}")
    intents = open_intents(folders["state"])
    leftover += len(intents)
    details += [f"left over: open journal intent {intent}" for intent in intents]
    lost = duplicated = quarantined = 0
    for uid, where in found.items():
        source = manifest[uid]
        if not where:
            lost += 1
            details.append(f"lost: {uid} ({source['relative']}, dropped as {dropped[uid]})")
            continue
        by = {place: [path for p, path in where if p == place] for place in ("drop", "out", "review", "quarantine")}
        quarantined += len(by["quarantine"])
        delivered = len(by["out"]) + len(by["review"])
        if action in MOVES:
            extra = len(where) > 1
            if by["drop"]:
                leftover += len(by["drop"])
                details.append(f"left over: {uid} still in the drop folder {by['drop']}")
        elif action in COPIES:
            extra = delivered > 1 or len(by["drop"]) > 1
        else:
            extra = len(by["drop"]) > 1 or delivered > 1
        if extra:
            duplicated += 1
            details.append(f"duplicated: {uid} at {[path for _, path in where]}")
        for place, path in where:
            if sha256(path) == source["sha256"]:
                continue
            # Rewritten copies may differ in SeriesDescription only; review copies and the sources
            # a copy leaves behind must be unchanged.
            rewritten = (action in {"rewrite+move", "rewrite+copy"} and place == "out") or (action == "rewrite" and place == "drop")
            if rewritten:
                same, why = same_except_description(source["path"], path)
                if same:
                    continue
            else:
                why = "bytes differ"
            corrupted += 1
            details.append(f"corrupted: {path} ({place}) against {source['relative']}: {why}")
    return {"lost": lost, "duplicated": duplicated, "leftover": leftover, "corrupted": corrupted,
            "quarantined": quarantined}, details


def main():
    mrsort, rounds, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    seed = int(os.environ.get("SOAK_SEED", "1"))
    per_round = int(os.environ.get("SOAK_SERIES", "16"))
    max_kills = int(os.environ.get("SOAK_MAX_KILLS", "3"))
    low, high = (float(x) for x in os.environ.get("SOAK_KILL_WINDOW", "1.0,3.0").split(","))
    realdata = os.environ.get("SOAK_REALDATA", os.path.join(here, "..", "shared", "realdata"))
    duplicates = os.environ.get("SOAK_DUPLICATES")
    timeout = float(os.environ.get("SOAK_TIMEOUT", "60"))
    keep = os.environ.get("SOAK_KEEP") == "1"
    second = os.environ.get("SOAK_SECOND_FS", "/dev/shm")
    os.makedirs(work, exist_ok=True)
    systems = [("same", work)]
    if second != "none" and os.path.isdir(second) and os.access(second, os.W_OK):
        if os.stat(second).st_dev != os.stat(work).st_dev:
            systems.append(("other", os.path.join(second, f"mrsort-soak-{os.getpid()}")))
        else:
            print(f"{second} is on the same file system as {work}: one file system only")
    else:
        print("no second file system: one file system only")
    for label, base in systems:
        print(f"file system {label}: {base} ({subprocess.run(['stat', '-f', '-c', '%T', os.path.dirname(base) if label == 'other' else base], capture_output=True, text=True).stdout.strip()})")
    pool = build_pool(realdata, os.path.join(work, "pool.json"))
    names = sorted(pool)
    print(f"pool: {len(names)} series, {sum(len(f) for f in pool.values())} files; seed {seed}; "
          f"{per_round} series per round; up to {max_kills} SIGKILLs per round in [{low}, {high}] s after each start")
    env_models = os.environ.get("MRSORT_MODELS") or os.path.join(here, "models")
    os.environ["MRSORT_MODELS"] = env_models

    totals = {}
    failures = []
    fields = ["lost", "duplicated", "leftover", "corrupted"]
    started = time.time()
    for index in range(rounds):
        rng = random.Random(seed * 1_000_003 + index)
        action = ACTIONS[index % len(ACTIONS)]
        system, base = systems[(index // len(ACTIONS)) % len(systems)]
        root = os.path.join(work, f"round-{index:03d}")
        other = os.path.join(base, f"round-{index:03d}") if system == "other" else root
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)
        folders = {"root": root, "drop": os.path.join(root, "in"), "stage": os.path.join(root, "stage"),
                   "state": os.path.join(root, "state"), "out": os.path.join(other, "out"),
                   "review": os.path.join(other, "review"), "quarantine": os.path.join(other, "quarantine")}
        for key in ("drop", "stage", "out", "review", "quarantine"):
            os.makedirs(folders[key])
        config = configure(folders, action, duplicates)
        chosen = rng.sample(names, min(per_round, len(names)))
        manifest, dropped = {}, {}
        for name in chosen:
            for uid, source in pool[name].items():
                target = os.path.join(folders["stage"], source["relative"])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(source["path"], target)
                manifest[uid] = source
                dropped[uid] = os.path.join(folders["drop"], source["relative"])
        sources = list(dropped.values())
        # Half the rounds find the files at start-up (rescan), half see them arrive (inotify).
        at_start = (index // (len(ACTIONS) * len(systems))) % 2 == 0
        log = open(os.path.join(root, "agent.log"), "ab")

        def arrive():
            for name in os.listdir(folders["stage"]):
                os.rename(os.path.join(folders["stage"], name), os.path.join(folders["drop"], name))

        if at_start:
            arrive()
        kills = []
        t0 = time.time()
        for life in range(rng.randint(1, max_kills)):
            agent = Agent(mrsort, config, log)
            if life == 0 and not at_start:
                time.sleep(0.2)
                arrive()
            instant = rng.uniform(low, high)
            time.sleep(instant)
            agent.kill()
            kills.append(f"{instant:.2f}s@{progress(action, folders, sources, len(manifest))}%")
        agent = Agent(mrsort, config, log)
        deadline = time.time() + timeout
        timed_out = False
        while not agent.ready() or not finished(action, folders, sources, len(manifest)):
            if time.time() > deadline:
                timed_out = True
                break
            time.sleep(0.1)
        status = agent.terminate()
        seconds = time.time() - t0
        log.close()
        counts, details = count(action, folders, manifest, dropped)
        if timed_out:
            details.append(f"did not finish within {timeout:.0f} s")
        if status not in (0,):
            details.append(f"SIGTERM: exit status {status}")
        bad = any(counts[f] for f in fields) or timed_out or status != 0
        cell = totals.setdefault((action, system), {"rounds": 0, "files": 0, "kills": 0, "seconds": 0.0,
                                                    "quarantined": 0, **{f: 0 for f in fields}})
        cell["rounds"] += 1
        cell["files"] += len(manifest)
        cell["kills"] += len(kills)
        cell["seconds"] += seconds
        for f in fields + ["quarantined"]:
            cell[f] += counts[f]
        print(f"round {index:3d} {action:12s} {system:5s} {len(chosen)} series {len(manifest):3d} files "
              f"{'start-up' if at_start else 'arrival '} kills at {' '.join(kills)}  {seconds:5.1f} s  "
              + " ".join(f"{f}={counts[f]}" for f in fields + ['quarantined']) + ("  FAILED" if bad else ""), flush=True)
        if bad:
            failures.append(index)
            with open(os.path.join(root, "findings.txt"), "w") as handle:
                handle.write(f"seed {seed} round {index} action {action} fs {system} series {chosen} kills {kills}\n")
                handle.write("\n".join(details) + "\n")
            for line in details[:20]:
                print("    " + line)
            if len(details) > 20:
                print(f"    … {len(details) - 20} more in {root}/findings.txt")
        elif not keep:
            shutil.rmtree(root, ignore_errors=True)
            if other != root:
                shutil.rmtree(other, ignore_errors=True)
    for _, base in systems[1:]:
        if not keep and os.path.isdir(base) and not os.listdir(base):
            os.rmdir(base)

    print()
    header = f"| action | file system | rounds | files | SIGKILLs | lost | duplicated | left over | corrupted | quarantined | s/round |"
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    grand = {"rounds": 0, "files": 0, "kills": 0, "seconds": 0.0, "quarantined": 0, **{f: 0 for f in fields}}
    for action in ACTIONS:
        for system, _ in systems:
            cell = totals.get((action, system))
            if not cell:
                continue
            for key in grand:
                grand[key] += cell[key]
            print(f"| {action} | {system} | {cell['rounds']} | {cell['files']} | {cell['kills']} | "
                  + " | ".join(str(cell[f]) for f in fields) + f" | {cell['quarantined']} | {cell['seconds'] / cell['rounds']:.1f} |")
    print(f"| **total** | | {grand['rounds']} | {grand['files']} | {grand['kills']} | "
          + " | ".join(f"**{grand[f]}**" for f in fields) + f" | {grand['quarantined']} | {grand['seconds'] / max(1, grand['rounds']):.1f} |")
    print(f"\n{rounds} rounds in {time.time() - started:.0f} s; seed {seed}")
    if failures:
        print(f"FAILED rounds: {failures} (folders kept under {work}; SOAK_SEED={seed} reproduces the same choices)")
        sys.exit(1)


if __name__ == "__main__":
    main()
