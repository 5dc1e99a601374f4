"""Clinical notes by DP in-context learning: fidelity, leakage, consistency, accounting, speed.

On the simulated MDS notes corpus (``fedsynth.text.simulate_notes``) with the offline default
model (SmolLM2-135M-Instruct in-process through llama.cpp, one thread) and the all-MiniLM-L6-v2
embedder:

* ``--private`` notes with their rows are the private corpus, ``--holdout`` other real notes the
  reference of fidelity; ``--notes`` notes are written, each conditioned on one row of a
  synthetic table (``gaussian_copula`` fitted on the private rows): multimodal synthetic
  patients;
* methods: zero-shot (the first public candidate of each note), ESA at epsilon 1, 3, 8 (delta
  1e-5) and without noise, in both aggregations: **shared** (one noisy sum of the answers of
  ``--shared-prompts`` row-free private prompts, one Gaussian mechanism for the whole release)
  and **per-note** (``--prompts`` row-conditioned private prompts and one noisy sum per note, as
  published); non-private ICL (one prompt of ``--shots`` private notes with the row, released as
  is, as in Wu et al.). Every method sees the same ``--candidates`` public candidates per note
  (their seeds depend on the note's number only) and the ESA runs share their generations
  (cached), differing only in the noise;
* signal and noise: how often each noisy choice equals the noiseless one, the true score spread
  over sigma, and the estimates of :func:`fedsynth.text.esa.signal_to_noise`;
* fidelity: Fréchet distance (with a paired bootstrap over the notes), precision/recall (k=5)
  and centroid cosine of the note embeddings against the holdout, with ``--notes`` real private
  notes as the real reference;
* leakage: private 8-grams reproduced that the public texts (instructions, headers) lack, and
  the longest span shared with a private note;
* consistency with the conditioning row: of the released notes (the row's header and the
  narrative without contradicting sentences: :mod:`fedsynth.text.grounding`), and of the
  model's own candidates before any check (the model's ability);
* accounting: the ledger's epsilon against Opacus's RDP and PRV accountants;
* speed: wall and CPU seconds and the load average of ``--timed-notes`` notes at epsilon 3
  (shared aggregate, first, on its own generations), notes per hour; llama.cpp with 1 and 4
  parallel slots on the same 8 chats;
* the same epsilon-3 release of ``--http-notes`` notes through the OpenAI-compatible backend
  against a llama.cpp server (xllamacpp) with the same model, in another process on loopback.

Run ``python benchmarks/text.py``; writes ``benchmarks/results/text.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _clock import Clock  # noqa: E402

RESULTS = HERE / "results"
DELTA = 1e-5
SERVER = """
import sys, time
from fedsynth.text.llama import LocalLlamaBackend
server = LocalLlamaBackend(n_threads=1)._start()
print(server.listening_address, flush=True)
sys.stdin.read()
"""


class CachingBackend:
    """The same chat, settings and seed answered once: the ESA runs share their generations."""

    def __init__(self, backend):
        from fedsynth.text.backends import LLMBackend

        class _Cached(LLMBackend):
            def chat(inner, messages, **kwargs):
                key = json.dumps([messages, sorted(kwargs.items())], default=str)
                if key not in self.cache:
                    self.calls += 1
                    self.cache[key] = backend.chat(messages, **kwargs)
                    self.outputs.append((messages, self.cache[key]))
                return self.cache[key]

        self.cache: dict[str, str] = {}
        self.outputs: list[tuple[list, str]] = []
        self.calls = 0
        self.backend = _Cached()


def fidelity(real, synthetic) -> dict[str, float]:
    from fedsynth.text.metrics import frechet_distance, precision_recall

    centre = synthetic.mean(axis=0) @ real.mean(axis=0)
    centre /= np.linalg.norm(synthetic.mean(axis=0)) * np.linalg.norm(real.mean(axis=0))
    return {
        "frechet": frechet_distance(real, synthetic),
        **precision_recall(real, synthetic, k=5),
        "centroid_cosine": float(centre),
    }


def opacus_epsilons(sigma: float, sensitivity: float, steps: int) -> dict[str, float]:
    from opacus.accountants import PRVAccountant, RDPAccountant

    history = [(sigma / sensitivity, 1.0, steps)]
    rdp, prv = RDPAccountant(), PRVAccountant()
    rdp.history, prv.history = list(history), list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alphas = [1 + x / 10 for x in range(1, 100)] + list(range(12, 1000))
        return {"rdp": rdp.get_epsilon(DELTA, alphas=alphas), "prv": prv.get_epsilon(DELTA)}


def http_run(args, common, train, rows, row_dicts, public, embedder) -> dict:
    """The epsilon-3 release of ``--http-notes`` notes through the OpenAI-compatible backend,
    against an xllamacpp server with the same model in a child process, on loopback."""
    import fedsynth
    from fedsynth.text.backends import OpenAICompatibleBackend
    from fedsynth.text.leakage import reproduced_ngrams
    from fedsynth.text.metrics import row_consistency_rate

    private_texts = train["text"].tolist()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = server.stdout.readline().strip()
        backend = OpenAICompatibleBackend(address + "/v1", model="SmolLM2-135M-Instruct")
        gen = fedsynth.make("dp_icl", dp={"epsilon": 3.0, "delta": DELTA}, **common)
        gen.set_backend(backend, embedder=embedder).fit(train)
        with Clock() as clock:
            texts = gen.sample(args.http_notes, conditions=rows.iloc[: args.http_notes])
        server_cpu = _child_cpu(server.pid)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return {
        "address": address,
        "notes": args.http_notes,
        "wall_s": clock.wall,
        "client_cpu_s": clock.cpu,
        "server_cpu_s": server_cpu,
        "notes_per_hour_wall": 3600 * args.http_notes / clock.wall,
        "consistency": row_consistency_rate(texts, row_dicts[: args.http_notes])["agreement"],
        "private_8grams": reproduced_ngrams(texts, private_texts, public=public)["count"],
        "epsilon_spent": gen.privacy_spent_.epsilon,
        "example": texts[0],
    }


def _child_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LoadSampler:
    """The 1-minute load average, read every ``every`` seconds in a thread during a run."""

    def __init__(self, every: float = 15.0):
        import threading

        self.every, self.values = every, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.values.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.values.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        return {
            "mean": float(np.mean(self.values)),
            "min": float(min(self.values)),
            "max": float(max(self.values)),
        }


def batching_probe(chats, max_tokens: int) -> dict:
    """CPU and wall seconds of the same chats through llama.cpp with 1 and 4 parallel slots."""
    from fedsynth.text.llama import LocalLlamaBackend

    out = {}
    for slots in (1, 4):
        llm = LocalLlamaBackend(n_threads=1, n_parallel=slots)
        llm.chat(chats[0], max_tokens=2, seed=0)  # load the model outside the clock
        with Clock() as clock:
            llm.chat_many(chats, seeds=list(range(len(chats))), max_tokens=max_tokens)
        out[str(slots)] = {"wall_s": clock.wall, "cpu_s": clock.cpu, "chats": len(chats)}
        llm.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=30)
    parser.add_argument("--timed-notes", type=int, default=20)
    parser.add_argument("--private", type=int, default=300)
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--prompts", type=int, default=8, help="per-note private prompts")
    parser.add_argument("--shared-prompts", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--http-notes", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="text")
    parser.add_argument(
        "--http-only", action="store_true", help="Only the OpenAI-compatible backend's run."
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import fedsynth
    from fedsynth.text.corpus import simulate_notes
    from fedsynth.text.embeddings import SentenceEmbedder
    from fedsynth.text.esa import SENSITIVITY, build_prompt, esa_sigma
    from fedsynth.text.grounding import fact_header, narrative_consistency
    from fedsynth.text.leakage import longest_shared_span, reproduced_ngrams
    from fedsynth.text.llama import LocalLlamaBackend
    from fedsynth.text.metrics import frechet_bootstrap, row_consistency_rate
    from fedsynth.text.prompts import DEFAULT_INSTRUCTION, row_instruction

    cohort = fedsynth.datasets.mds_cohort(n=args.private + args.holdout, seed=args.seed)
    corpus = simulate_notes(cohort, seed=args.seed)
    private_rows = cohort.iloc[: args.private].reset_index(drop=True)
    private = corpus.iloc[: args.private].reset_index(drop=True)
    holdout = corpus.iloc[args.private :]["text"].tolist()
    train = private_rows.assign(text=private["text"])

    tabular = fedsynth.make("gaussian_copula", seed=args.seed).fit(private_rows)
    rows = tabular.sample(args.notes).reset_index(drop=True)
    row_dicts = rows.to_dict("records")
    instructions = [row_instruction(r) for r in row_dicts]
    public = instructions + [fact_header(r) for r in row_dicts]

    embedder = SentenceEmbedder(n_threads=1)
    cached = CachingBackend(LocalLlamaBackend(n_threads=1))
    common = {
        "shots": args.shots,
        "candidates": args.candidates,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
    }
    per_note = {**common, "n_prompts": args.prompts, "aggregation": "per_note"}
    shared = {**common, "n_prompts": args.shared_prompts, "aggregation": "shared"}

    if args.http_only:
        http = http_run(args, shared, train, rows, row_dicts, public, embedder)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps(http, indent=2, default=float))
        print(json.dumps(http, indent=2, default=float))
        return

    def generator(params, dp):
        gen = fedsynth.make("dp_icl", dp=dp, verbose=False, **params)
        return gen.set_backend(cached.backend, embedder=embedder).fit(train)

    runs: dict[str, dict] = {}

    def record(name, params, dp, mode="esa"):
        gen = generator(params, dp)
        before = cached.calls
        with LoadSampler() as load, Clock() as clock:
            texts = gen.sample(args.notes, conditions=rows, mode=mode)
        runs[name] = {
            "texts": texts,
            "generations": cached.calls - before,
            "wall_s": clock.wall,
            "cpu_s": clock.cpu,
            "load": load.summary(),
            "gen": gen,
        }
        print(
            f"{name}: {cached.calls - before} new generations, {clock.wall:.0f} s wall, "
            f"{clock.cpu:.0f} CPU s, load {load.summary()['mean']:.1f}",
            flush=True,
        )

    # The target's run, first and on its own generations: 20 notes at epsilon 3, shared mode.
    eps3 = {"epsilon": 3.0, "delta": DELTA}
    gen = generator(shared, eps3)
    with LoadSampler() as load, Clock() as clock:
        gen.sample(args.timed_notes, conditions=rows.iloc[: args.timed_notes])
    timed = {
        "notes": args.timed_notes,
        "generations": cached.calls,
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
        "load": load.summary(),
        "ensemble": f"{args.shared_prompts} row-free private prompts once + "
        f"{args.candidates} candidates per note (shared aggregate)",
    }
    print(f"timed: {timed}", flush=True)
    for eps in (3.0, 1.0, 8.0):
        record(f"ESA shared eps {eps:g}", shared, {"epsilon": eps, "delta": DELTA})
    record("ESA shared no noise", shared, None)
    for eps in (3.0, 1.0, 8.0):
        record(f"ESA per-note eps {eps:g}", per_note, {"epsilon": eps, "delta": DELTA})
    record("ESA per-note no noise", per_note, None)
    # Zero-shot: the first public candidate of each note (the generator's zero_shot mode draws
    # the same seed as ESA's first candidate, so this costs no generation).
    record("zero-shot", per_note, None, mode="zero_shot")
    # Non-private ICL as in the paper: one prompt of ``shots`` private notes (with the row's
    # facts, like ESA's per-note prompts), its answer released as is.
    record("ICL (non-private)", per_note, None, mode="icl")

    holdout_emb = embedder.embed(holdout)
    private_texts = private["text"].tolist()
    embedded = {name: embedder.embed(run["texts"]) for name, run in runs.items()}
    embedded["real (private notes)"] = embedder.embed(private_texts[: args.notes])
    boot = frechet_bootstrap(holdout_emb, embedded, reps=args.bootstrap, seed=args.seed)
    table = {}
    for name in ["real (private notes)", *runs]:
        entry = fidelity(holdout_emb, embedded[name])
        assert abs(entry["frechet"] - boot[name]["value"]) < 1e-6 * max(1.0, entry["frechet"])
        entry["frechet_ci"] = [boot[name]["low"], boot[name]["high"]]
        table[name] = entry
        if name not in runs:
            continue
        run, texts = runs[name], runs[name]["texts"]
        entry["private_8grams"] = reproduced_ngrams(texts, private_texts, public=public)["count"]
        entry["longest_shared_span"] = int(longest_shared_span(texts, private_texts).max())
        entry["consistency"] = row_consistency_rate(texts, row_dicts)["agreement"]
        agreeing = stated = 0
        for text, row in zip(texts, row_dicts, strict=True):
            a, s = narrative_consistency(text, row)
            agreeing, stated = agreeing + a, stated + s
        entry["sentence_consistency"] = agreeing / stated
        entry["words"] = float(np.mean([len(t.split()) for t in texts]))
        for key in ("generations", "wall_s", "cpu_s", "load"):
            entry[key] = run[key]
        spent = run["gen"].privacy_spent_
        entry["epsilon_spent"] = None if spent is None else spent.epsilon

    # Paired bootstrap differences behind the ordering (positive: the first is farther).
    def diff(a, b):
        d = boot[a]["draws"] - boot[b]["draws"]
        return {
            "value": boot[a]["value"] - boot[b]["value"],
            "low": float(np.quantile(d, 0.025)),
            "high": float(np.quantile(d, 0.975)),
            "share_positive": float(np.mean(d > 0)),
        }

    pairs = {}
    for kind in ("shared", "per-note"):
        pairs[kind] = {
            "zero-shot - eps 1": diff("zero-shot", f"ESA {kind} eps 1"),
            "eps 1 - eps 8": diff(f"ESA {kind} eps 1", f"ESA {kind} eps 8"),
            "eps 8 - ICL": diff(f"ESA {kind} eps 8", "ICL (non-private)"),
            "no noise - ICL": diff(f"ESA {kind} no noise", "ICL (non-private)"),
        }

    # Signal and noise: agreement of each noisy choice with the noiseless one, the estimates
    # from the released sums, and the true score spread (noiseless sum) over the noise.
    snr = {}
    for kind in ("shared", "per-note"):
        clean = runs[f"ESA {kind} no noise"]["gen"].release_log_
        for eps in (1.0, 3.0, 8.0):
            log = runs[f"ESA {kind} eps {eps:g}"]["gen"].release_log_
            sigma = log[0]["sigma"]
            snr[f"{kind} eps {eps:g}"] = {
                "sigma": sigma,
                "same_choice_as_noiseless": float(
                    np.mean([a["chosen"] == b["chosen"] for a, b in zip(log, clean, strict=True)])
                ),
                "true_score_snr": float(np.mean([c["score_spread"] / sigma for c in clean])),
                "true_signal_over_noise": float(
                    np.mean([c["signal"] for c in clean]) / (sigma * np.sqrt(384))
                ),
                "estimated_span_snr": float(np.mean([r["span_snr"] for r in log])),
                "estimated_snr": float(np.mean([r["snr"] for r in log])),
                "true_signal": float(np.mean([c["signal"] for c in clean])),
            }
    candidates_choice = float(
        np.mean([r["candidates"] for r in runs["ESA shared no noise"]["gen"].release_log_])
    )

    by_instruction = dict(zip(instructions, row_dicts, strict=True))
    own_a = own_s = 0
    for messages, text in cached.outputs:
        prompt = messages[-1]["content"]
        if "Example note" not in prompt and prompt in by_instruction:
            a, s = narrative_consistency(text, by_instruction[prompt])
            own_a, own_s = own_a + a, own_s + s
    model_consistency = {"agreeing": own_a, "stated": own_s, "rate": own_a / max(own_s, 1)}

    accounting = {}
    for kind, releases in (("shared", 1), ("per-note", args.notes)):
        for eps in (1.0, 3.0, 8.0):
            sigma = esa_sigma(eps, DELTA, releases)
            accounting[f"{kind} {eps:g}"] = {
                "ledger": runs[f"ESA {kind} eps {eps:g}"]["gen"].privacy_spent_.epsilon,
                "sigma": sigma,
                "releases": releases,
                **opacus_epsilons(sigma, SENSITIVITY, releases),
            }

    throughput = {
        **timed,
        "notes_per_hour_wall": 3600 * timed["notes"] / timed["wall_s"],
        "notes_per_cpu_hour": 3600 * timed["notes"] / timed["cpu_s"],
        "per_note": {
            k: runs["ESA per-note eps 3"][k] for k in ("generations", "wall_s", "cpu_s", "load")
        },
    }
    probe_chats = [build_prompt(DEFAULT_INSTRUCTION, private_texts[i : i + 1]) for i in range(8)]
    batching = batching_probe(probe_chats, args.max_tokens)

    http = None
    if args.http_notes:
        http = http_run(args, shared, train, rows, row_dicts, public, embedder)
    elif (RESULTS / "text_http.json").exists():
        # Run beside this one with --http-only (another process); session 12's file otherwise.
        http = json.loads((RESULTS / "text_http.json").read_text())

    result = {
        "config": vars(args) | {"delta": DELTA, "machine": platform.platform()},
        "methods": table,
        "pairs": pairs,
        "snr": snr,
        "candidates_after_check": candidates_choice,
        "model_consistency": model_consistency,
        "accounting": accounting,
        "throughput": throughput,
        "batching": batching,
        "http": http,
        "examples": {name: run["texts"][0] for name, run in runs.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2, default=float))
    (RESULTS / f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))


def targets(result: dict) -> list[str]:
    """Each target of the issue, met or missed, with its numbers."""
    m, pairs, snr = result["methods"], result["pairs"], result["snr"]

    def fd(name):
        e = m[name]
        return f"{e['frechet']:.4f} [{e['frechet_ci'][0]:.4f}, {e['frechet_ci'][1]:.4f}]"

    def gap(p):
        return (
            f"{p['value']:+.4f} [{p['low']:+.4f}, {p['high']:+.4f}], "
            f"{p['share_positive']:.0%} of replicates > 0"
        )

    lines = []
    for kind in ("shared", "per-note"):
        z, e1, e8 = "zero-shot", f"ESA {kind} eps 1", f"ESA {kind} eps 8"
        icl = "ICL (non-private)"
        f = {k: m[k]["frechet"] for k in (z, e1, e8, icl)}
        order = [
            ("zero-shot worse than ESA eps 1", f[z] > f[e1], pairs[kind]["zero-shot - eps 1"]),
            ("ESA eps 1 no better than ESA eps 8", f[e1] >= f[e8], pairs[kind]["eps 1 - eps 8"]),
            ("ESA eps 8 no better than ICL", f[e8] >= f[icl], pairs[kind]["eps 8 - ICL"]),
        ]
        verdicts = "; ".join(
            f"{name}: {'met' if ok else 'MISSED'} (difference {gap(p)})" for name, ok, p in order
        )
        same = [snr[f"{kind} eps {e}"]["same_choice_as_noiseless"] for e in ("1", "3", "8")]
        lines.append(
            f"- Ordering, {kind} ESA (Fréchet, lower better, 95% bootstrap CI): zero-shot "
            f"{fd(z)}, eps 1 {fd(e1)}, eps 8 {fd(e8)}, ICL {fd(icl)}. {verdicts}. Same choice "
            f"as the noiseless aggregate at eps 1 / 3 / 8: {same[0]:.0%} / {same[1]:.0%} / "
            f"{same[2]:.0%}."
        )
    esa = [k for k in m if k.startswith("ESA") and "no noise" not in k]
    copies = sum(m[k]["private_8grams"] for k in esa)
    lines.append(
        f"- Private 8-grams leaked by ESA outputs: {copies:.0f} "
        f"({'met' if copies == 0 else 'MISSED'}); ICL (non-private) "
        f"{m['ICL (non-private)']['private_8grams']:.0f}."
    )
    worst_c = min(m[k]["consistency"] for k in esa)
    lines.append(
        f"- Consistency with the conditioning row: at least {worst_c:.3f} of facts over the ESA "
        f"runs ({'met' if worst_c >= 0.9 else 'MISSED'}: >= 0.9; by design of the grounded "
        f"note); the model's own candidates {result['model_consistency']['rate']:.3f} of the "
        f"{result['model_consistency']['stated']} facts they state."
    )
    accounting = result["accounting"]
    worst = max(abs(a["prv"] - a["ledger"]) / a["ledger"] for a in accounting.values())
    lines.append(
        f"- Spent epsilon against Opacus PRV: largest relative gap {worst:.2%} "
        f"({'met' if worst < 0.02 else 'MISSED'}); RDP is looser, as expected."
    )
    t = result["throughput"]
    lines.append(
        f"- Throughput: {t['notes_per_hour_wall']:.1f} notes/hour wall, "
        f"{t['notes_per_cpu_hour']:.1f} notes per CPU hour at {t['ensemble']}."
    )
    load = t["load"]
    lines.append(
        f"- {t['notes']} notes at epsilon 3 (shared aggregate, {t['generations']} generations): "
        f"{t['wall_s'] / 60:.1f} min wall ({'met' if t['wall_s'] < 1800 else 'MISSED'}: < 30), "
        f"{t['cpu_s']:.0f} CPU s ({t['cpu_s'] / 60:.1f} CPU min), 1-minute load average "
        f"{load['mean']:.1f} (from {load['min']:.1f} to {load['max']:.1f}) on 2 cores."
    )
    return lines


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [
        "# Clinical notes by DP-ICL (ESA): benchmark",
        "",
        f"Simulated MDS notes: {cfg['private']} private, {cfg['holdout']} holdout; "
        f"{cfg['notes']} notes per method, each conditioned on a synthetic row "
        f"(gaussian_copula). SmolLM2-135M-Instruct (llama.cpp, 1 thread), all-MiniLM-L6-v2; "
        f"{cfg['shots']} shot(s) per private prompt; {cfg['candidates']} public candidates per "
        f"note; max {cfg['max_tokens']} tokens; delta {cfg['delta']:g}; seed {cfg['seed']}. "
        f"**Shared ESA**: one noisy sum of {cfg['shared_prompts']} row-free private prompts "
        "(one Gaussian mechanism for the whole release), every note's row-conditioned "
        f"candidates chosen by cosine to it. **Per-note ESA** (as published): {cfg['prompts']} "
        f"row-conditioned private prompts and one noisy sum per note ({cfg['notes']} Gaussian "
        "mechanisms composed). Zero-shot = the first candidate; ICL = one private prompt of "
        f"{cfg['shots']} shot(s) with the row, answered and released as is (as in Wu et al.). "
        "Every method shares the same candidates for a note; the ESA runs differ only in the "
        f"noise. Fréchet intervals: paired percentile bootstrap over the notes ({cfg['bootstrap']}"
        " replicates, holdout fixed). A resample repeats notes, which moves the Fréchet "
        "distance of 20 notes in 384 dimensions upward, so an interval can lie above its point "
        "estimate (even for the real notes): read the paired differences below, where that "
        "shift is shared by both methods.",
        "",
        "| method | Fréchet (lower better) | 95% CI | precision | recall | centroid cos | "
        "private 8-grams | longest span | consistency | sentence consistency | "
        "words | eps spent |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["methods"].items():
        cells = [
            f"{m['frechet']:.4f}",
            f"[{m['frechet_ci'][0]:.4f}, {m['frechet_ci'][1]:.4f}]",
            f"{m['precision']:.2f}",
            f"{m['recall']:.2f}",
            f"{m['centroid_cosine']:.4f}",
        ]
        if "consistency" in m:
            spent = "-" if m["epsilon_spent"] is None else f"{m['epsilon_spent']:.3f}"
            cells += [
                f"{m['private_8grams']:.0f}",
                str(m["longest_shared_span"]),
                f"{m['consistency']:.3f}",
                f"{m['sentence_consistency']:.3f}",
                f"{m['words']:.0f}",
                spent,
            ]
        else:
            cells += ["-"] * 6
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired differences of Fréchet distance (first minus second; 95% CI):",
        "",
        "| ESA | comparison | difference | 95% CI | replicates > 0 |",
        "|---|---|---|---|---|",
    ]
    for kind, rows in result["pairs"].items():
        for name, p in rows.items():
            lines.append(
                f"| {kind} | {name} | {p['value']:+.4f} | [{p['low']:+.4f}, {p['high']:+.4f}] | "
                f"{p['share_positive']:.0%} |"
            )
    lines += [
        "",
        "Signal and noise (means over the notes): *same choice* = the noisy release picks the "
        "candidate the noiseless sum picks; *true score SNR* = spread of the candidates' scores "
        "under the noiseless sum / sigma (the noise on one score); *signal/noise* = norm of the "
        "noiseless sum / sigma sqrt(384); *estimated span SNR* = the same in the candidates' "
        "span, estimated from the released sum alone (post-processing). "
        f"{result['candidates_after_check']:.1f} candidates on average remain after the public "
        "row check.",
        "",
        "| release | sigma | same choice | true score SNR | noiseless sum norm | signal/noise | "
        "estimated span SNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in result["snr"].items():
        lines.append(
            f"| {name} | {v['sigma']:.2f} | {v['same_choice_as_noiseless']:.0%} | "
            f"{v['true_score_snr']:.2f} | {v['true_signal']:.1f} | "
            f"{v['true_signal_over_noise']:.3f} | {v['estimated_span_snr']:.2f} |"
        )
    own = result["model_consistency"]
    lines += [
        "",
        f"The model's own candidates (before the header and the check): {own['agreeing']} of "
        f"{own['stated']} stated facts agree with the row ({own['rate']:.3f}).",
        "",
        "| release | epsilon asked | Gaussian mechanisms | ledger | Opacus RDP | Opacus PRV | "
        "sigma |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, a in result["accounting"].items():
        kind, eps = key.rsplit(" ", 1)
        lines.append(
            f"| {kind} | {eps} | {a['releases']} | {a['ledger']:.4f} | {a['rdp']:.4f} | "
            f"{a['prv']:.4f} | {a['sigma']:.2f} |"
        )
    t = result["throughput"]
    pn = t["per_note"]
    lines += [
        "",
        f"Speed. Shared ESA at eps 3 ({t['ensemble']}): {t['notes']} notes, {t['generations']} "
        f"generations, {t['wall_s']:.0f} s wall ({t['wall_s'] / 60:.1f} min), {t['cpu_s']:.0f} "
        f"CPU s, load {t['load']['mean']:.1f}: {t['notes_per_hour_wall']:.1f} notes/hour wall, "
        f"{t['notes_per_cpu_hour']:.1f} notes per CPU hour. Per-note ESA at eps 3: "
        f"{pn['generations']} further generations (its private prompts; the candidates were "
        f"the shared run's) in {pn['cpu_s']:.0f} CPU s, {pn['wall_s']:.0f} s wall at load "
        f"{pn['load']['mean']:.1f}.",
    ]
    b = result["batching"]
    lines += [
        "",
        f"Batching in llama.cpp ({b['1']['chats']} one-shot chats, max {cfg['max_tokens']} "
        f"tokens, 1 thread): 1 slot {b['1']['cpu_s']:.1f} CPU s / {b['1']['wall_s']:.1f} s "
        f"wall; 4 slots (`n_parallel=4`) {b['4']['cpu_s']:.1f} CPU s / {b['4']['wall_s']:.1f} s "
        "wall. Batched runs do not repeat a seed's answer exactly, so the benchmark uses 1 slot.",
    ]
    if result["http"]:
        h = result["http"]
        lines += [
            "",
            f"OpenAI-compatible backend (xllamacpp server, same model, {h['address']}; from "
            "`text_http.json`, session 12's per-note ESA with 4 prompts x 2 shots + 4 "
            "candidates, not rerun with this run's settings): "
            f"{h['notes']} notes at eps 3 in {h['wall_s']:.0f} s wall, "
            f"{h['client_cpu_s']:.0f} CPU s client + {h['server_cpu_s']:.0f} CPU s server "
            f"({h['notes_per_hour_wall']:.1f} notes/hour), consistency "
            f"{h['consistency']:.3f}, private 8-grams {h['private_8grams']:.0f}, epsilon spent "
            f"{h['epsilon_spent']:.3f}.",
        ]
    lines += ["", "## Targets", "", *targets(result)]
    lines += ["", "## One note per method", ""]
    for name, text in result["examples"].items():
        lines += [f"**{name}**", "", "```", text, "```", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--markdown"]:  # rewrite the .md from the saved .json
        saved = json.loads((RESULTS / "text.json").read_text())
        (RESULTS / "text.md").write_text(markdown(saved))
    else:
        main()
