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
#: Method names of each private aggregation (the centroid is no published mechanism).
KINDS = {
    "shared": "ESA shared",
    "per-note": "ESA per-note",
    "centroid": "centroid (not published)",
}
SERVER = """
import sys, time
from fedsynth.text.llama import LocalLlamaBackend
server = LocalLlamaBackend(n_threads=1)._start()
print(server.listening_address, flush=True)
sys.stdin.read()
"""


class CachingBackend:
    """The same chat, settings and seed answered once: the ESA runs share their generations.

    With ``path``, every new answer is appended (and flushed) to a JSON-lines file with the CPU
    and wall seconds it took, and a later run starts from that file: a killed run loses at most
    the generation under way. A cache hit adds the recorded seconds to ``hit_cpu`` / ``hit_wall``,
    so that a timed block is measured seconds + recorded seconds of the answers it reused
    (:func:`timed`), the same numbers whether its generations ran now or in an earlier process.
    """

    def __init__(self, backend, path: str | None = None):
        from fedsynth.text.backends import LLMBackend

        self.cache: dict[str, dict] = {}
        # Each distinct generation used by this process, once (the noise draws repeat them).
        self.outputs: dict[str, tuple[list, str]] = {}
        self.calls = 0
        self.hit_cpu = self.hit_wall = 0.0
        self.loads: list[float] = []  # 1-minute load average when each answer was generated
        self.path = Path(path) if path else None
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():  # a line cut by a kill is dropped with its generation
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    self.cache[entry["key"]] = entry
        self.loaded = len(self.cache)

        class _Cached(LLMBackend):
            def chat(inner, messages, **kwargs):
                key = cache_key(messages, kwargs)
                entry = self.cache.get(key)
                if entry is None:
                    self.calls += 1
                    with Clock() as clock:
                        answer = backend.chat(messages, **kwargs)
                    entry = {"key": key, "answer": answer, "cpu_s": clock.cpu}
                    entry |= {"wall_s": clock.wall, "load": os.getloadavg()[0]}
                    self.cache[key] = entry
                    if self.path:
                        with self.path.open("a") as handle:
                            handle.write(json.dumps(entry) + "\n")
                else:
                    self.hit_cpu += entry["cpu_s"]
                    self.hit_wall += entry["wall_s"]
                self.outputs.setdefault(key, (messages, entry["answer"]))
                self.loads.append(entry["load"])
                return entry["answer"]

        self.backend = _Cached()


def cache_key(messages, kwargs) -> str:
    """The key of one generation: its chat and every setting (seed included)."""
    import hashlib

    raw = json.dumps([messages, sorted(kwargs.items())], default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


class timed:
    """Wall and CPU seconds of a block, counting the recorded seconds of cached answers."""

    def __init__(self, cached: CachingBackend):
        self.cached = cached

    def __enter__(self):
        self._hits = (self.cached.hit_cpu, self.cached.hit_wall)
        self._first = len(self.cached.loads)
        self._clock = Clock().__enter__()
        return self

    def __exit__(self, *exc):
        self._clock.__exit__(*exc)
        self.cpu = self._clock.cpu + self.cached.hit_cpu - self._hits[0]
        self.wall = self._clock.wall + self.cached.hit_wall - self._hits[1]
        self.reused_cpu = self.cached.hit_cpu - self._hits[0]
        loads = self.cached.loads[self._first :] or [os.getloadavg()[0]]
        self.load = {"mean": float(np.mean(loads)), "min": min(loads), "max": max(loads)}


class CachingEmbedder:
    """Each text embedded once (the noise draws re-embed the same answers and candidates)."""

    def __init__(self, embedder):
        self.embedder, self.cache = embedder, {}

    def embed(self, texts):
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self.cache[text] = np.asarray(vector)
        return np.stack([self.cache[t] for t in texts])


def reseed_noise(gen, epsilon: float | None, draw: int, seed: int) -> None:
    """Independent noise for each epsilon and draw, the same prompts and candidates.

    The generator seeds its noise stream from its own seed, so two generators with the same
    seed at epsilon 1 and 8 would add the same standard normal draws, scaled: common noise,
    which makes the releases at different epsilons dependent. The benchmark reseeds that stream
    alone after ``fit`` (the private prompts and the candidates come from the other streams and
    stay the same, so their generations are shared).
    """
    code = 0 if epsilon is None else round(epsilon * 1000)
    gen._noise_rng = np.random.default_rng([seed, 7_919, code, draw])


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


def http_run(args, common, train, rows, row_dicts, public, embedder, cached=None) -> dict:
    """The epsilon-3 release of ``--http-notes`` notes through the OpenAI-compatible backend,
    against an xllamacpp server with the same model in a child process, on loopback.

    With ``cached`` (the in-process generations), each answer of the server is compared with
    the in-process answer to the same chat and seed, where one was generated.
    """
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
        answered: list[tuple[str, str]] = []

        class Recording(OpenAICompatibleBackend):
            def chat(self, messages, **kwargs):
                answer = super().chat(messages, **kwargs)
                answered.append((cache_key(messages, kwargs), answer))
                return answer

        backend = Recording(address + "/v1", model="SmolLM2-135M-Instruct")
        gen = fedsynth.make("dp_icl", dp={"epsilon": 3.0, "delta": DELTA}, **common)
        gen.set_backend(backend, embedder=embedder).fit(train)
        with Clock() as clock:
            texts = gen.sample(args.http_notes, conditions=rows.iloc[: args.http_notes])
        server_cpu = _child_cpu(server.pid)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    same = None
    if cached is not None:
        pairs = [(a, cached.cache[k]["answer"]) for k, a in answered if k in cached.cache]
        same = {"compared": len(pairs), "identical": sum(a == b for a, b in pairs)}
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
        "settings": {k: common[k] for k in ("aggregation", "n_prompts", "candidates", "shots")}
        | {"max_tokens": common["max_tokens"]},
        "generations": len(answered),
        "same_as_in_process": same,
        "example": texts[0],
    }


def _child_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def noise_draws(args, generator, rows, per_note, shared, centroid, embedder, holdout) -> dict:
    """ESA releases redrawn ``--noise-draws`` times with new noise only (no new generation).

    The released notes of one run are one draw of the noise; these draws give, per epsilon, the
    expected share of notes whose release equals the noiseless choice and the spread of the
    Fréchet distance that the noise alone causes, with the prompts and candidates fixed.
    """
    from fedsynth.text.metrics import frechet_bootstrap

    holdout_emb = embedder.embed(holdout)
    out = {}
    for kind, params in (("per-note", per_note), ("shared", shared), ("centroid", centroid)):
        clean_gen = generator(params, None)
        clean = clean_gen.sample(args.notes, conditions=rows)
        clean_scores = [np.array(e["scores"]) for e in clean_gen.release_log_]
        sets, same, noise, chosen = {}, {}, {}, {}
        for eps in (1.0, 3.0, 8.0):
            for draw in range(1, args.noise_draws + 1):
                gen = generator(params, {"epsilon": eps, "delta": DELTA}, draw)
                texts = gen.sample(args.notes, conditions=rows)
                sets[(eps, draw)] = embedder.embed(texts)
                chosen[(eps, draw)] = [e["style"] for e in gen.release_log_]
                same[(eps, draw)] = np.mean([a == b for a, b in zip(texts, clean, strict=True)])
                # The noise on each candidate's score in this draw (released minus noiseless).
                noise[(eps, draw)] = [
                    np.array(e["scores"]) - c
                    for e, c in zip(gen.release_log_, clean_scores, strict=True)
                ]
        values = frechet_bootstrap(holdout_emb, {str(k): v for k, v in sets.items()}, reps=1)
        for eps in (1.0, 3.0, 8.0):
            keys = [(eps, d) for d in range(1, args.noise_draws + 1)]
            f = np.array([values[str(k)]["value"] for k in keys])
            s = np.array([same[k] for k in keys])
            out[f"{kind} eps {eps:g}"] = {
                "draws": len(keys),
                "same_choice_mean": float(s.mean()),
                "same_choice_q": [float(np.quantile(s, q)) for q in (0.025, 0.5, 0.975)],
                "frechet_mean": float(f.mean()),
                "frechet_q": [float(np.quantile(f, q)) for q in (0.025, 0.5, 0.975)],
                "frechet_values": f.tolist(),
                # Which public instruction (style) the releases chose, over draws and notes.
                "style_counts": np.bincount(
                    [x for k in keys for x in chosen[k]], minlength=1
                ).tolist(),
                # More prompts, extrapolated: if the noiseless sum grows in proportion to the
                # prompts (the same mean answer per prompt), m times the prompts leave the
                # choice as with this sum and the noise divided by m.
                "same_choice_if_prompts_times": {
                    str(m): float(
                        np.mean(
                            [
                                np.argmax(c + z / m) == np.argmax(c)
                                for k in keys
                                for c, z in zip(clean_scores, noise[k], strict=True)
                            ]
                        )
                    )
                    for m in (1, 2, 4, 8, 16)
                },
            }
        print(f"noise draws {kind}: done", flush=True)
    return out


def style_table(args, runs, draws, cached, styled, row_dicts, embedder, holdout_emb):
    """Per public instruction (style): the notes all written from it, and how often ESA chose it.

    The notes of one style are each note's first candidate from that style's instruction,
    grounded as released (style 0: the zero-shot notes): what a choice of style by hand, reading
    no private note, would give. ``None`` without ``--candidate-styles``.
    """
    from fedsynth.text.grounding import grounded_note, least_contradicting
    from fedsynth.text.metrics import frechet_bootstrap

    if not args.candidate_styles:
        return None
    generated: dict[str, list[str]] = {}  # each public prompt's answers, in order of generation
    for messages, text in cached.outputs.values():
        generated.setdefault(messages[-1]["content"], []).append(text)
    first = {prompt: texts[0] for prompt, texts in generated.items()}
    n_styles = len(styled[0])
    sets = {
        f"style {s}": embedder.embed(
            [grounded_note(first[r[s]], row) for r, row in zip(styled, row_dicts, strict=True)]
        )
        for s in range(n_styles)
    }
    boot = frechet_bootstrap(holdout_emb, sets, reps=args.bootstrap, seed=args.seed)
    out = {"instructions": [r.split("\nThe patient:")[0] for r in styled[0]], "alone": {}}
    for s in range(n_styles):
        d = boot[f"style {s}"]["draws"] - boot["style 0"]["draws"]
        out["alone"][str(s)] = {
            "frechet": boot[f"style {s}"]["value"],
            "minus_zero_shot": boot[f"style {s}"]["value"] - boot["style 0"]["value"],
            "low": float(np.quantile(d, 0.025)),
            "high": float(np.quantile(d, 0.975)),
        }
    # No private signal: each note's candidate drawn uniformly among those the public row check
    # keeps, redrawn --noise-draws times: what mixing the styles gives without any choice.
    rng = np.random.default_rng([args.seed, 4_243])
    kept = []
    for r, row in zip(styled, row_dicts, strict=True):
        texts = [t for prompt in r for t in generated[prompt]][: args.candidates]
        kept.append([grounded_note(texts[i], row) for i in least_contradicting(texts, row)])
    draws_random = {
        str(d): embedder.embed([k[rng.integers(len(k))] for k in kept])
        for d in range(args.noise_draws)
    }
    values = frechet_bootstrap(holdout_emb, draws_random, reps=1)
    f = np.array([v["value"] for v in values.values()])
    out["random_choice"] = {
        "draws": len(f),
        "frechet_mean": float(f.mean()),
        "frechet_q": [float(np.quantile(f, q)) for q in (0.025, 0.5, 0.975)],
        "frechet_values": f.tolist(),
    }
    # How many random public choices do as well as each noiseless private choice.
    out["random_at_most"] = {
        name: float(np.mean(f <= value))
        for name, value in (
            (
                f"{KINDS[k]} no noise",
                fidelity(holdout_emb, embedder.embed(runs[f"{KINDS[k]} no noise"]["texts"]))[
                    "frechet"
                ],
            )
            for k in KINDS
        )
    }
    out["chosen"] = {
        name: np.bincount(
            [e["style"] for e in run["gen"].release_log_], minlength=n_styles
        ).tolist()
        for name, run in runs.items()
        if run["gen"].release_log_
    }
    out["chosen_over_draws"] = {
        name: (d["style_counts"] + [0] * n_styles)[:n_styles] for name, d in draws.items()
    }
    return out


def style_lines(st: dict) -> list[str]:
    """The markdown of :func:`style_table`."""
    n = len(st["instructions"])
    lines = [
        "",
        "Candidate styles (public instructions; candidate j from instruction j mod "
        f"{n}): the notes all written from one style (each note's first candidate of it, "
        "grounded; style 0 = zero-shot), Fréchet and the paired difference to zero-shot "
        f"(95% CI), and how many of the notes each release chose from each style:",
        "",
        "| style | instruction | Fréchet alone | minus zero-shot | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for s, text in enumerate(st["instructions"]):
        a = st["alone"][str(s)]
        lines.append(
            f"| {s} | {text[:90]}{'...' if len(text) > 90 else ''} | {a['frechet']:.4f} | "
            f"{a['minus_zero_shot']:+.4f} | [{a['low']:+.4f}, {a['high']:+.4f}] |"
        )
    r = st.get("random_choice")
    if r:
        q = r["frechet_q"]
        lines += [
            "",
            f"No private signal (each note's candidate drawn uniformly among those the row check "
            f"keeps, {r['draws']} draws): Fréchet mean {r['frechet_mean']:.4f}, quantiles "
            f"{q[0]:.4f} / {q[1]:.4f} / {q[2]:.4f}: the gain of mixing styles alone; ESA's gain "
            "from the private signal is what lies below it (the noise-draw table). Share of "
            "these random choices at most as far as the noiseless release: "
            + ", ".join(f"{k} {v:.0%}" for k, v in st.get("random_at_most", {}).items())
            + ".",
        ]
    lines += ["", "| release | " + " | ".join(f"style {s}" for s in range(n)) + " |"]
    lines.append("|---|" + "---|" * n)
    for name, counts in st["chosen"].items():
        lines.append(f"| {name} | " + " | ".join(str(c) for c in counts) + " |")
    for name, counts in st["chosen_over_draws"].items():
        total = max(sum(counts), 1)
        lines.append(
            f"| {name}, over the noise draws | "
            + " | ".join(f"{c / total:.0%}" for c in counts)
            + " |"
        )
    return lines


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
    parser.add_argument(
        "--cache", default=None, help="JSON-lines file of generations: resumes a killed run"
    )
    parser.add_argument(
        "--noise-draws", type=int, default=100, help="ESA releases redrawn with new noise only"
    )
    parser.add_argument("--skip-batching", action="store_true")
    parser.add_argument(
        "--candidate-styles",
        default=None,
        help="Public instructions of the candidates: 'clinical' (the built-in styles) or none",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import fedsynth
    from fedsynth.text.centroid import SENSITIVITY as CENTROID_SENSITIVITY
    from fedsynth.text.centroid import centroid_sigma
    from fedsynth.text.corpus import simulate_notes
    from fedsynth.text.embeddings import SentenceEmbedder
    from fedsynth.text.esa import SENSITIVITY, build_prompt, esa_sigma
    from fedsynth.text.grounding import fact_header, narrative_consistency
    from fedsynth.text.leakage import longest_shared_span, reproduced_ngrams
    from fedsynth.text.llama import LocalLlamaBackend
    from fedsynth.text.metrics import frechet_bootstrap, row_consistency_rate
    from fedsynth.text.prompts import DEFAULT_INSTRUCTION, candidate_bases, row_instruction

    cohort = fedsynth.datasets.mds_cohort(n=args.private + args.holdout, seed=args.seed)
    corpus = simulate_notes(cohort, seed=args.seed)
    private_rows = cohort.iloc[: args.private].reset_index(drop=True)
    private = corpus.iloc[: args.private].reset_index(drop=True)
    holdout = corpus.iloc[args.private :]["text"].tolist()
    train = private_rows.assign(text=private["text"])

    tabular = fedsynth.make("gaussian_copula", seed=args.seed).fit(private_rows)
    rows = tabular.sample(args.notes).reset_index(drop=True)
    row_dicts = rows.to_dict("records")
    # Every candidate's public instruction (each style's) is public text for the leakage check.
    bases = candidate_bases(DEFAULT_INSTRUCTION, args.candidate_styles)
    styled = [[row_instruction(r, base=b) for b in bases] for r in row_dicts]
    public = [i for row_styles in styled for i in row_styles] + [fact_header(r) for r in row_dicts]

    embedder = CachingEmbedder(SentenceEmbedder(n_threads=1))
    cached = CachingBackend(LocalLlamaBackend(n_threads=1), args.cache)
    print(f"{cached.loaded} generations loaded from the cache", flush=True)
    common = {
        "shots": args.shots,
        "candidates": args.candidates,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "candidate_styles": args.candidate_styles,
    }
    per_note = {**common, "n_prompts": args.prompts, "aggregation": "per_note"}
    shared = {**common, "n_prompts": args.shared_prompts, "aggregation": "shared"}
    # Not published: one noisy sum of the private notes' own embeddings (no private prompt).
    centroid = {**common, "n_prompts": 1, "aggregation": "note_centroid"}

    if args.http_only:
        http = http_run(args, shared, train, rows, row_dicts, public, embedder, cached)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps(http, indent=2, default=float))
        print(json.dumps(http, indent=2, default=float))
        return

    def generator(params, dp, draw=0):
        gen = fedsynth.make("dp_icl", dp=dp, verbose=False, **params)
        gen.set_backend(cached.backend, embedder=embedder).fit(train)
        reseed_noise(gen, None if dp is None else dp["epsilon"], draw, args.seed)
        return gen

    runs: dict[str, dict] = {}

    def record(name, params, dp, mode="esa"):
        gen = generator(params, dp)
        before = cached.calls
        with timed(cached) as clock:
            texts = gen.sample(args.notes, conditions=rows, mode=mode)
        runs[name] = {
            "texts": texts,
            "generations": cached.calls - before,
            "wall_s": clock.wall,
            "cpu_s": clock.cpu,
            "reused_cpu_s": clock.reused_cpu,
            "load": clock.load,
            "gen": gen,
        }
        print(
            f"{name}: {cached.calls - before} new generations, {clock.wall:.0f} s wall, "
            f"{clock.cpu:.0f} CPU s, load {clock.load['mean']:.1f}",
            flush=True,
        )

    # The target's run, first and on its own generations: 20 notes at epsilon 3, shared mode.
    eps3 = {"epsilon": 3.0, "delta": DELTA}
    gen = generator(shared, eps3)
    calls = len(cached.outputs)
    with timed(cached) as clock:
        gen.sample(args.timed_notes, conditions=rows.iloc[: args.timed_notes])
    timed_run = {
        "notes": args.timed_notes,
        "generations": len(cached.outputs) - calls,
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
        "reused_cpu_s": clock.reused_cpu,
        "load": clock.load,
        "ensemble": f"{args.shared_prompts} row-free private prompts once + "
        f"{args.candidates} candidates per note (shared aggregate)",
    }
    print(f"timed: {timed_run}", flush=True)
    for eps in (3.0, 1.0, 8.0):
        record(f"ESA shared eps {eps:g}", shared, {"epsilon": eps, "delta": DELTA})
    record("ESA shared no noise", shared, None)
    # Zero-shot: the first public candidate of each note (the generator's zero_shot mode draws
    # the same seed as ESA's first candidate, so this costs no generation).
    record("zero-shot", per_note, None, mode="zero_shot")
    # Non-private ICL as in the paper: one prompt of ``shots`` private notes (with the row's
    # facts, like ESA's per-note prompts), its answer released as is.
    record("ICL (non-private)", per_note, None, mode="icl")
    for eps in (3.0, 1.0, 8.0):
        record(f"{KINDS['centroid']} eps {eps:g}", centroid, {"epsilon": eps, "delta": DELTA})
    record(f"{KINDS['centroid']} no noise", centroid, None)
    # The published mechanism last (the bulk of the generations: notes x prompts), its private
    # answers generated once by the first run and reused by the others (cache).
    for eps in (3.0, 1.0, 8.0):
        record(f"ESA per-note eps {eps:g}", per_note, {"epsilon": eps, "delta": DELTA})
    record("ESA per-note no noise", per_note, None)
    draws = noise_draws(args, generator, rows, per_note, shared, centroid, embedder, holdout)

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
    for kind in KINDS:
        pairs[kind] = {
            "zero-shot - eps 1": diff("zero-shot", f"{KINDS[kind]} eps 1"),
            "eps 1 - eps 8": diff(f"{KINDS[kind]} eps 1", f"{KINDS[kind]} eps 8"),
            "eps 8 - ICL": diff(f"{KINDS[kind]} eps 8", "ICL (non-private)"),
            "no noise - ICL": diff(f"{KINDS[kind]} no noise", "ICL (non-private)"),
        }

    # Signal and noise: agreement of each noisy choice with the noiseless one, the estimates
    # from the released sums, and the true score spread (noiseless sum) over the noise.
    snr = {}
    for kind in KINDS:
        clean = runs[f"{KINDS[kind]} no noise"]["gen"].release_log_
        for eps in (1.0, 3.0, 8.0):
            log = runs[f"{KINDS[kind]} eps {eps:g}"]["gen"].release_log_
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

    by_instruction = {
        i: r for row_styles, r in zip(styled, row_dicts, strict=True) for i in row_styles
    }
    own_a = own_s = 0
    for messages, text in cached.outputs.values():
        prompt = messages[-1]["content"]
        if "Example note" not in prompt and prompt in by_instruction:
            a, s = narrative_consistency(text, by_instruction[prompt])
            own_a, own_s = own_a + a, own_s + s
    model_consistency = {"agreeing": own_a, "stated": own_s, "rate": own_a / max(own_s, 1)}

    accounting = {}
    for kind, releases in (("shared", 1), ("per-note", args.notes), ("centroid", 1)):
        for eps in (1.0, 3.0, 8.0):
            if kind == "centroid":
                sigma, sensitivity = centroid_sigma(eps, DELTA), CENTROID_SENSITIVITY
            else:
                sigma, sensitivity = esa_sigma(eps, DELTA, releases), SENSITIVITY
            accounting[f"{kind} {eps:g}"] = {
                "ledger": runs[f"{KINDS[kind]} eps {eps:g}"]["gen"].privacy_spent_.epsilon,
                "sigma": sigma,
                "releases": releases,
                **opacus_epsilons(sigma, sensitivity, releases),
            }

    first = runs["ESA per-note eps 3"]
    throughput = {
        **timed_run,
        "notes_per_hour_wall": 3600 * timed_run["notes"] / timed_run["wall_s"],
        "notes_per_cpu_hour": 3600 * timed_run["notes"] / timed_run["cpu_s"],
        # The published mechanism's cost per note: its private prompts and its candidates
        # (recorded when generated, whichever run generated them), plus embedding and choice.
        "per_note": {
            "notes": args.notes,
            "ensemble": f"{args.prompts} row-conditioned private prompts + "
            f"{args.candidates} candidates per note",
            "notes_per_hour_wall": 3600 * args.notes / first["wall_s"],
            "notes_per_cpu_hour": 3600 * args.notes / first["cpu_s"],
            **{k: first[k] for k in ("generations", "wall_s", "cpu_s", "reused_cpu_s", "load")},
        },
    }
    per_prompt = []
    for entry in runs["ESA per-note no noise"]["gen"].release_log_:
        ranked = sorted(entry["scores"], reverse=True)
        per_prompt.append(
            {"spread": entry["score_spread"] / args.prompts, "gap": ranked[0] - ranked[1]}
        )
    signal = {
        "prompts": args.prompts,
        "spread_per_prompt": float(np.mean([x["spread"] for x in per_prompt])),
        "top_gap_per_prompt": float(np.mean([x["gap"] for x in per_prompt]) / args.prompts),
    }
    batching = None
    if not args.skip_batching:
        chats = [build_prompt(DEFAULT_INSTRUCTION, private_texts[i : i + 1]) for i in range(8)]
        batching = batching_probe(chats, args.max_tokens)

    http = None
    if args.http_notes:
        http = http_run(args, shared, train, rows, row_dicts, public, embedder, cached)
    elif (RESULTS / "text_http.json").exists():
        # Run beside this one with --http-only (another process); session 12's file otherwise.
        http = json.loads((RESULTS / "text_http.json").read_text())

    styles = style_table(args, runs, draws, cached, styled, row_dicts, embedder, holdout_emb)
    result = {
        "config": vars(args) | {"delta": DELTA, "machine": platform.platform()},
        "styles": styles,
        "methods": table,
        "pairs": pairs,
        "snr": snr,
        "noise_draws": draws,
        "signal_per_prompt": signal,
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
    for kind in pairs:
        z, e1, e8 = "zero-shot", f"{KINDS[kind]} eps 1", f"{KINDS[kind]} eps 8"
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
            f"- Ordering, {KINDS[kind]} (Fréchet, lower better, 95% bootstrap CI): zero-shot "
            f"{fd(z)}, eps 1 {fd(e1)}, eps 8 {fd(e8)}, ICL {fd(icl)}. {verdicts}. Same choice "
            f"as the noiseless aggregate at eps 1 / 3 / 8: {same[0]:.0%} / {same[1]:.0%} / "
            f"{same[2]:.0%}."
        )
        draws = result.get("noise_draws") or {}
        if f"{kind} eps 8" in draws:
            d = {e: draws[f"{kind} eps {e}"] for e in ("1", "3", "8")}
            mean_order = f[z] > d["1"]["frechet_mean"] >= d["8"]["frechet_mean"] >= f[icl]
            lines.append(
                f"  - Over {d['8']['draws']} noise draws ({KINDS[kind]}): Fréchet mean "
                "eps 1 / 3 / 8 "
                f"{d['1']['frechet_mean']:.4f} / {d['3']['frechet_mean']:.4f} / "
                f"{d['8']['frechet_mean']:.4f} (zero-shot {f[z]:.4f}, ICL {f[icl]:.4f}): "
                f"ordering of the means {'holds' if mean_order else 'does NOT hold'}; same "
                f"choice as noiseless {d['1']['same_choice_mean']:.0%} / "
                f"{d['3']['same_choice_mean']:.0%} / {d['8']['same_choice_mean']:.0%}; at eps 8 "
                f"the choices track the noiseless aggregate "
                f"({'met' if d['8']['same_choice_mean'] >= 0.75 else 'MISSED'}: >= 75 %, chance "
                f"about 1 in {result['candidates_after_check']:.1f})."
            )
    esa = [k for k in m if k.startswith(("ESA", "centroid")) and "no noise" not in k]
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
        "Every method shares the same candidates for a note, and every ESA run of an aggregation "
        "the same private prompts and answers (generated once); the ESA runs differ only in the "
        "noise, drawn independently for each epsilon (the noise stream reseeded per epsilon "
        "and draw). Fréchet intervals: paired percentile bootstrap over the notes "
        f"({cfg['bootstrap']} replicates, holdout fixed). A resample repeats notes, which "
        "moves the Fréchet "
        f"distance of {cfg['notes']} notes in 384 dimensions upward, so an interval can lie "
        "above its point "
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
    if result.get("styles"):
        lines += style_lines(result["styles"])
    sig = result.get("signal_per_prompt")
    if sig:
        lines += [
            "",
            f"Signal per private prompt (per-note, noiseless, {sig['prompts']} prompts): spread "
            f"of the candidates' scores {sig['spread_per_prompt']:.4f} per prompt, gap between "
            f"the best and second-best candidate {sig['top_gap_per_prompt']:.4f} per prompt "
            "(means over the notes; the noise on one score is sigma).",
        ]
    draws = result.get("noise_draws")
    if draws:
        lines += [
            "",
            "The same releases redrawn with new noise only (prompts, answers and candidates "
            "fixed): share of the notes whose release equals the noiseless choice, and Fréchet "
            "distance to the holdout, over the draws (mean, 2.5 / 50 / 97.5 % quantiles):",
            "",
            "| release | draws | same choice mean | same choice quantiles | Fréchet mean | "
            "Fréchet quantiles |",
            "|---|---|---|---|---|---|",
        ]
        for name, d in draws.items():
            q, fq = d["same_choice_q"], d["frechet_q"]
            lines.append(
                f"| {name} | {d['draws']} | {d['same_choice_mean']:.0%} | "
                f"{q[0]:.0%} / {q[1]:.0%} / {q[2]:.0%} | {d['frechet_mean']:.4f} | "
                f"{fq[0]:.4f} / {fq[1]:.4f} / {fq[2]:.4f} |"
            )
        lines += [
            "",
            "More prompts, extrapolated from the same draws: share of choices equal to the "
            "noiseless one if the prompts were multiplied by m, assuming the noiseless sum grows "
            "in proportion (the same mean answer per prompt), i.e. the noise divided by m "
            "(m = 1 is the run itself). A model-based projection, not a measurement:",
            "",
            "| release | m = 1 | 2 | 4 | 8 | 16 |",
            "|---|---|---|---|---|---|",
        ]
        for name, d in draws.items():
            proj = d.get("same_choice_if_prompts_times")
            if proj:
                lines.append(f"| {name} | " + " | ".join(f"{v:.0%}" for v in proj.values()) + " |")
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
        f"{t['notes_per_cpu_hour']:.1f} notes per CPU hour. Per-note ESA (as published) at "
        f"eps 3 ({pn.get('ensemble', '')}): {pn['cpu_s']:.0f} CPU s and {pn['wall_s']:.0f} s "
        f"wall for {cfg['notes']} notes ({pn['generations']} generations run by this run, the "
        "others reused with the seconds recorded when they were generated), load "
        f"{pn['load']['mean']:.1f}"
        + (
            f": {pn['notes_per_hour_wall']:.1f} notes/hour wall, "
            f"{pn['notes_per_cpu_hour']:.1f} notes per CPU hour."
            if "notes_per_hour_wall" in pn
            else "."
        ),
    ]
    b = result["batching"]
    if b:
        lines += [
            "",
            f"Batching in llama.cpp ({b['1']['chats']} one-shot chats, max {cfg['max_tokens']} "
            f"tokens, 1 thread): 1 slot {b['1']['cpu_s']:.1f} CPU s / {b['1']['wall_s']:.1f} s "
            f"wall; 4 slots (`n_parallel=4`) {b['4']['cpu_s']:.1f} CPU s / "
            f"{b['4']['wall_s']:.1f} s wall. Batched runs do not repeat a seed's answer exactly, "
            "so the benchmark uses 1 slot.",
        ]
    if result["http"]:
        h = result["http"]
        lines += [
            "",
            f"OpenAI-compatible backend (xllamacpp server, same model, {h['address']}; "
            + (
                "{aggregation} ESA, {n_prompts} private prompts x {shots} shot(s), {candidates} "
                "candidates per note, max {max_tokens} tokens): ".format(**h["settings"])
                if "settings" in h
                else "session 12's per-note ESA with 4 prompts x 2 shots + 4 candidates): "
            )
            + f"{h['notes']} notes at eps 3 in {h['wall_s']:.0f} s wall, "
            f"{h['client_cpu_s']:.0f} CPU s client + {h['server_cpu_s']:.0f} CPU s server "
            f"({h['notes_per_hour_wall']:.1f} notes/hour), consistency "
            f"{h['consistency']:.3f}, private 8-grams {h['private_8grams']:.0f}, epsilon spent "
            f"{h['epsilon_spent']:.3f}."
            + (
                " Answers identical to the in-process backend's for the same chat and seed: "
                "{identical} of {compared} compared.".format(**h["same_as_in_process"])
                if h.get("same_as_in_process")
                else ""
            ),
        ]
    lines += ["", "## Targets", "", *targets(result)]
    if result.get("remarks"):  # written by hand into the .json after the run, then --markdown
        lines += ["", "## Remarks", "", *result["remarks"]]
    lines += ["", "## One note per method", ""]
    for name, text in result["examples"].items():
        lines += [f"**{name}**", "", "```", text, "```", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--markdown"]:  # rewrite the .md from the saved .json
        name = sys.argv[2] if len(sys.argv) > 2 else "text"  # --markdown text_styles
        saved = json.loads((RESULTS / f"{name}.json").read_text())
        if name == "text" and (RESULTS / "text_http.json").exists():  # an --http-only run
            saved["http"] = json.loads((RESULTS / "text_http.json").read_text())
            (RESULTS / "text.json").write_text(json.dumps(saved, indent=2, default=float))
        (RESULTS / f"{name}.md").write_text(markdown(saved))
    else:
        main()
