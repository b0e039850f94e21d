"""``sdd``: the single-machine tools (no Ray). The Ray jobs live in ``pipelines/``.

    sdd data shapes --n 2000 --seed 0 --out data/shapes.parquet
    sdd teacher sample --prompt "a red object" --n 16 --out samples/red.parquet
    sdd teacher eval --guidance 2,3,4 --out runs/teacher_eval
    sdd judge eval --n 2000
    sdd select  [--config C] [--prompt P ...] [--run-dir D]     indicator sweep + timestep choice
    sdd distill [--config C] [--prompt P ...] [--run-dir D]     one manipulator per prompt
    sdd eval --manipulator DIR [--sdedit 0.3,0.5]               edit quality (+ SDEdit baseline)
    sdd edit --manipulator DIR --input URL --out URL            apply a manipulator to a Parquet dataset
    sdd samples --out runs/samples                              a shapes dataset + teacher samples per prompt
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _parquet_and_grid_urls(out: str, stem: str) -> tuple[str, str]:
    """``x.parquet`` -> (x.parquet, x.png); anything else is a directory -> (dir/stem.parquet, dir/stem.png)."""
    if out.endswith(".parquet"):
        return out, out[: -len(".parquet")] + ".png"
    base = out.rstrip("/")
    return f"{base}/{stem}.parquet", f"{base}/{stem}.png"


def cmd_data_shapes(args) -> None:
    from sdd.domains.shapes.dataset import write_shapes_dataset

    started = time.time()
    table = write_shapes_dataset(args.out, args.n, args.seed)
    print(f"wrote {table.num_rows} shapes images (seed {args.seed}) to {args.out} in {time.time() - started:.1f}s")


def write_png(url: str, image: np.ndarray) -> None:
    from sdd.io.images import encode_image
    from sdd.io.storage import write_bytes_atomic

    write_bytes_atomic(url, encode_image(image))


def cmd_teacher_sample(args) -> None:
    import pyarrow as pa

    from sdd.io.images import encode_image, from_tensor_range, image_grid
    from sdd.io.parquet_images import image_column, write_table
    from sdd.sampling import sample
    from sdd.teachers import load_teacher

    teacher = load_teacher(args.teacher, device=args.device)
    defaults = getattr(teacher, "sampling_defaults", {"guidance_scale": 7.5, "steps": 50})
    guidance = args.guidance if args.guidance is not None else defaults["guidance_scale"]
    steps = args.steps if args.steps is not None else defaults["steps"]
    prompts = [p for p in args.prompt for _ in range(args.n)]
    images = from_tensor_range(sample(teacher, prompts, guidance_scale=guidance, steps=steps, seed=args.seed))
    table = pa.table({
        "id": pa.array(np.arange(len(prompts), dtype=np.int64)),
        "image": image_column([encode_image(img) for img in images]),
        "prompt": pa.array(prompts, type=pa.string()),
        "guidance_scale": pa.array([float(guidance)] * len(prompts)),
        "steps": pa.array([int(steps)] * len(prompts), type=pa.int64()),
        "seed": pa.array([int(args.seed)] * len(prompts), type=pa.int64()),
        "teacher_id": pa.array([teacher.id] * len(prompts), type=pa.string()),
    })
    parquet_url, grid_url = _parquet_and_grid_urls(args.out, "samples")
    write_table(table, parquet_url)
    write_png(grid_url, image_grid(images, rows=len(args.prompt), scale=4))
    print(f"{len(prompts)} samples (guidance {guidance}, {steps} DDIM steps) -> {parquet_url}; grid -> {grid_url}")


def cmd_teacher_eval(args) -> None:
    from sdd.domains.shapes import adherence
    from sdd.domains.shapes.judge import ShapesJudge
    from sdd.io.images import image_grid
    from sdd.io.storage import join, write_bytes_atomic
    from sdd.teachers import load_teacher

    teacher = load_teacher(args.teacher, device=args.device)
    judge = ShapesJudge.from_pretrained()
    report = {"teacher_id": teacher.id, "judge_id": judge.id, "steps": args.steps, "seed": args.seed, "results": {}}
    for g in args.guidance:
        started = time.time()
        sets = adherence.prompt_sets(seed=args.seed, names=tuple(args.sets))
        results, images = adherence.measure(teacher, judge, guidance_scale=g, steps=args.steps, seed=args.seed, sets=sets)
        report["results"][str(g)] = {"followed": results, "meets_targets": adherence.meets_targets(results),
                                     "seconds": round(time.time() - started, 1)}
        print(f"guidance {g}: " + "; ".join(
            f"{s}: " + ", ".join(f"{a} {v:.1%}" for a, v in r.items()) for s, r in results.items()
        ), flush=True)
        if args.out:
            for name, imgs in images.items():
                write_png(join(args.out, f"guidance_{g}_{name}.png"), image_grid(imgs[:96], rows=6, scale=3))
    report["targets"] = adherence.TARGETS
    if args.out:
        write_bytes_atomic(join(args.out, "adherence.json"), json.dumps(report, indent=2).encode())
    print(json.dumps(report, indent=2))


def cmd_judge_eval(args) -> None:
    from sdd.domains.shapes.judge import ShapesJudge
    from sdd.domains.shapes.train_judge import accuracy

    acc = accuracy(ShapesJudge.from_pretrained(), n=args.n, seed=args.seed)
    print(json.dumps({"n": args.n, "seed": args.seed, "accuracy": acc}, indent=2))


def cmd_demo(args) -> None:
    """A quick look without Ray: a shapes dataset, teacher samples per edit prompt, one grid
    (`make demo` runs the Ray jobs: pipelines/demo.py)."""
    from sdd.domains.shapes import spec
    from sdd.domains.shapes.captions import caption
    from sdd.domains.shapes.dataset import write_shapes_dataset
    from sdd.io.images import from_tensor_range, image_grid
    from sdd.io.storage import join
    from sdd.sampling import sample
    from sdd.teachers import load_teacher

    started = time.time()
    data_url = join(args.out, "shapes.parquet")
    table = write_shapes_dataset(data_url, args.n, args.seed)
    print(f"[1/2] wrote {table.num_rows} shapes images to {data_url}")
    teacher = load_teacher(None)
    prompts = [caption(color=c) for c in spec.COLORS]
    images = from_tensor_range(sample(
        teacher, [p for p in prompts for _ in range(args.per_prompt)],
        guidance_scale=teacher.sampling_defaults["guidance_scale"], steps=args.steps or teacher.sampling_defaults["steps"],
        seed=args.seed,
    ))
    grid_url = join(args.out, "teacher_samples.png")
    write_png(grid_url, image_grid(images, rows=len(prompts), scale=4))
    print(f"[2/2] teacher samples, one row per prompt ({', '.join(prompts)}) -> {grid_url}")
    print(f"samples finished in {time.time() - started:.1f}s")


def job_config(args):
    """Config file (or defaults) with the command line's overrides applied, validated."""
    from sdd.config import load_config

    config = load_config(args.config, run_dir=args.run_dir, prompts=args.prompt or None)
    distill = {k: v for k, v in {"steps": getattr(args, "steps", None),
                                 "timestep_policy": getattr(args, "timestep_policy", None)}.items() if v is not None}
    if distill:
        from sdd.config import parse_config

        data = config.model_dump()
        data["distill"].update(distill)
        config = parse_config(data, "command line")
    from sdd.preflight import check_job

    check_job(config)
    return config


def cmd_select(args) -> None:
    from sdd.runs import RunDir, load_run_teacher, run_selection

    config = job_config(args)
    run = RunDir(config.run_dir)
    run.write_config(config)
    selected = run_selection(config, run, load_run_teacher(config))
    for prompt in config.prompts:
        choice = selected[prompt]
        print(f"{prompt!r}: t = {choice['timesteps']} ({choice['indicator']}, {choice['policy']})")
    print(f"scores, selections and plots in {run.url}")


def cmd_distill(args) -> None:
    from sdd.distill import uses_selection
    from sdd.runs import RunDir, load_run_teacher, make_distiller, packs, run_selection, save_pack, write_before_after

    config = job_config(args)
    run = RunDir(config.run_dir)
    run.write_config(config)
    teacher = load_run_teacher(config)
    selected = run_selection(config, run, teacher) if uses_selection(config.distill.timestep_policy) else {}
    summary = {r["prompt"]: r for r in run.read_json("summary.json", default=[])}
    todo = [p for p in config.prompts if not run.registry.has(p)]
    for prompt in set(config.prompts) - set(todo):
        print(f"{prompt!r}: already in the registry, skipped")
    for pack in packs(todo, config.distill.pack):
        started = time.time()
        distiller = make_distiller(config, teacher, pack, selected)
        distiller.run()
        for record in save_pack(config, run, teacher, distiller, time.time() - started):
            summary[record["prompt"]] = record
            print(f"{record['prompt']!r}: done in {record['wall_seconds']}s; evaluation {record['evaluation']}")
    records = [summary[p] for p in config.prompts if p in summary]
    run.write_json(records, "summary.json")
    print_summary(records)
    grid = write_before_after(config, run)
    if grid:
        print(f"before/after grid: {grid}")


def print_summary(records: list[dict]) -> None:
    import pandas as pd

    rows = []
    for r in records:
        ev = r.get("evaluation") or {}
        rows.append({
            "prompt": r["prompt"], "timesteps": r.get("timesteps"), "steps": r.get("steps"),
            "editability": ev.get("editability"), **{f"keep_{k}": v for k, v in (ev.get("preservation") or {}).items()},
            "bg_psnr": ev.get("background_psnr"), "wall_s": r.get("wall_seconds"),
        })
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(pd.DataFrame(rows).to_string(index=False))


def cmd_eval(args) -> None:
    from sdd.artifacts import load_manipulator
    from sdd.domains.shapes.edits import held_out_sources, target_of
    from sdd.domains.shapes.judge import ShapesJudge
    from sdd.eval import SDEditEditor, evaluate

    artifact = load_manipulator(args.manipulator)
    prompt = artifact.manifest["prompt"]
    sources = held_out_sources(args.n, args.seed)
    judge = ShapesJudge.from_pretrained()
    target = target_of(prompt)
    rows = [{"editor": "sdd", **evaluate(artifact.edit, sources, target, judge).as_dict()}]
    if args.sdedit:
        from sdd.teachers import load_teacher

        teacher = load_teacher(None)
        for strength in args.sdedit:
            editor = SDEditEditor(teacher, prompt, strength=strength, guidance_scale=args.guidance, steps=args.steps)
            rows.append({"editor": f"sdedit@{strength}", **evaluate(editor, sources, target, judge).as_dict()})
    report = {"prompt": prompt, "manipulator": artifact.id, "n": args.n, "results": rows}
    if args.breakdown:
        from sdd.eval import breakdown

        groups = breakdown(artifact.edit, sources, target, judge)
        report["breakdown"] = groups.round(4).to_dict(orient="records")
        print(groups.round(2).to_string(index=False), file=sys.stderr)
    if args.out:
        from sdd.io.storage import write_bytes_atomic

        write_bytes_atomic(args.out, json.dumps(report, indent=2).encode())
    print(json.dumps(report, indent=2))


def cmd_edit(args) -> None:
    from sdd.edit import edit_parquet

    counts = edit_parquet(args.manipulator, args.input, args.out, image_column=args.image_column,
                          image_format=args.format, batch_size=args.batch_size, resize=args.resize)
    print(f"edited {counts['edited']} of {counts['input']} rows ({counts['failed']} could not be decoded) -> {args.out}")


def cmd_study(args) -> None:
    """The issue-#3 measurements for one prompt; tables (CSV) and figures under --out."""
    from sdd.domains.shapes.judge import ShapesJudge
    from sdd.eval import studies
    from sdd.io.storage import filesystem, join, write_bytes_atomic
    from sdd.plots import quality_vs_indicators_png
    from sdd.runs import RunDir, distill_config, load_run_teacher, run_selection

    config = job_config(args)
    run = RunDir(config.run_dir)
    teacher = load_run_teacher(config)
    judge = ShapesJudge.from_pretrained()
    selected = run_selection(config, run, teacher)
    scores = run.scores()
    n, seed = config.eval.images, config.eval.seed

    def write_csv(table, name):
        write_bytes_atomic(join(args.out, name), table.to_csv(index=False).encode())
        print(table.to_string(index=False))

    import pandas as pd

    def previous(name):
        """--reuse: the table this study wrote under --out before, if any."""
        fs, path = filesystem(join(args.out, name))
        if not args.reuse or not fs.exists(path):
            return None
        with fs.open(path, "rb") as f:
            return studies.read_rows(f)

    previous_sweep, previous_comparison = previous("fixed_t_quality.csv"), previous("policy_comparison.csv")
    sweeps, validations, comparisons = [], [], []
    for prompt in config.prompts:
        base = distill_config(config, [prompt], selected)
        if args.what in ("indicator", "all"):
            sweep = studies.fixed_t_sweep(teacher, base, args.grid, judge, n, seed, seeds=args.seeds,
                                          previous=previous_sweep)
            sweeps.append(sweep)
            write_bytes_atomic(join(args.out, f"quality_vs_t_{prompt.replace(' ', '_')}.png"),
                               quality_vs_indicators_png(sweep, scores, prompt))
            validations.append(studies.indicator_validation(scores, sweep))
        if args.what in ("claim", "all"):
            worst = (int(studies.quality_curve(sweeps[-1]).sort_values("quality").iloc[0]["t"]) if sweeps
                     else args.worst_t)
            comparisons.append(studies.policy_comparison(
                teacher, base, selected[prompt]["timesteps"], worst, judge, n, seed, seeds=args.seeds,
                previous=previous_comparison))
        if args.what in ("sdedit", "all"):
            guidance = args.sdedit_guidance or getattr(teacher, "sampling_defaults", {}).get("guidance_scale", 3.0)
            write_csv(studies.sdedit_sweep(teacher, prompt, args.strengths, judge, guidance_scale=guidance,
                                           n_eval=args.sdedit_images or n, eval_seed=seed),
                      f"sdedit_{prompt.replace(' ', '_')}.csv")
    if sweeps:
        write_csv(pd.concat(sweeps), "fixed_t_quality.csv")
        write_csv(studies.quality_curve(pd.concat(sweeps)), "fixed_t_quality_summary.csv")
        write_csv(pd.concat(validations), "indicator_validation.csv")
    if comparisons:
        write_csv(pd.concat(comparisons), "policy_comparison.csv")
        write_csv(studies.seed_summary(pd.concat(comparisons), ["prompt", "run"]), "policy_comparison_summary.csv")


def _job_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML job config (default: the shapes world, six recolour prompts)")
    p.add_argument("--prompt", action="append", help="override the config's prompts (repeatable)")
    p.add_argument("--run-dir", default=None, help="run directory URL (default: the config's run_dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate datasets").add_subparsers(dest="dataset", required=True)
    shapes = data.add_parser("shapes", help="procedural shapes images as HF-convention Parquet")
    shapes.add_argument("--n", type=int, required=True, help="number of images")
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument("--out", required=True, help="output Parquet URL (local path, s3://, ...)")
    shapes.set_defaults(func=cmd_data_shapes)

    teacher = sub.add_parser("teacher", help="look at a diffusion teacher").add_subparsers(dest="action", required=True)
    smp = teacher.add_parser("sample", help="guided DDIM samples, as Parquet plus a PNG grid")
    smp.add_argument("--prompt", action="append", required=True, help="repeat for several prompts (one grid row each)")
    smp.add_argument("--n", type=int, default=8, help="samples per prompt")
    smp.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the teacher's validated one)")
    smp.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the teacher's validated number)")
    smp.add_argument("--seed", type=int, default=0)
    smp.add_argument("--out", required=True, help="x.parquet (grid at x.png) or a directory URL")
    smp.add_argument("--teacher", default=None, help="'shapes' (default), or a checkpoint directory URL")
    smp.add_argument("--device", default="cpu")
    smp.set_defaults(func=cmd_teacher_sample)

    ev = teacher.add_parser("eval", help="prompt adherence of the shapes teacher, judged by the judge")
    ev.add_argument("--guidance", type=_floats, default=[3.0], help="one or more CFG scales, comma-separated")
    ev.add_argument("--steps", type=int, default=50)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default=None, help="directory URL for adherence.json and sample grids")
    ev.add_argument("--sets", type=lambda v: [s for s in v.split(",") if s], default=["full", "held_out", "partial", "edit_suite"],
                    help="comma-separated prompt sets: full, held_out, partial, edit_suite")
    ev.add_argument("--teacher", default=None)
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_teacher_eval)

    judge = sub.add_parser("judge", help="the shapes judge").add_subparsers(dest="action", required=True)
    jev = judge.add_parser("eval", help="per-attribute accuracy on freshly generated images")
    jev.add_argument("--n", type=int, default=2000)
    jev.add_argument("--seed", type=int, default=2024)
    jev.set_defaults(func=cmd_judge_eval)

    sel = sub.add_parser("select", help="indicator sweep over timesteps and timestep selection, per prompt")
    _job_arguments(sel)
    sel.set_defaults(func=cmd_select)

    dist = sub.add_parser("distill", help="train one manipulator per prompt (selection first if needed)")
    _job_arguments(dist)
    dist.add_argument("--steps", type=int, default=None, help="override distill.steps")
    dist.add_argument("--timestep-policy", default=None, help="override distill.timestep_policy")
    dist.set_defaults(func=cmd_distill)

    evl = sub.add_parser("eval", help="edit quality of a manipulator on held-out shapes images")
    evl.add_argument("--manipulator", required=True, help="artifact directory URL")
    evl.add_argument("--n", type=int, default=1000)
    evl.add_argument("--seed", type=int, default=10_000)
    evl.add_argument("--sdedit", type=_floats, default=None, help="also evaluate SDEdit at these strengths")
    evl.add_argument("--guidance", type=float, default=3.0, help="SDEdit guidance scale")
    evl.add_argument("--steps", type=int, default=50, help="SDEdit DDIM steps (full schedule)")
    evl.add_argument("--out", default=None, help="write the report JSON here")
    evl.add_argument("--breakdown", action="store_true",
                     help="also measure per (source colour, background) group, with the background shift and object colour")
    evl.set_defaults(func=cmd_eval)

    edt = sub.add_parser("edit", help="apply a manipulator to a Parquet image dataset")
    edt.add_argument("--manipulator", required=True)
    edt.add_argument("--input", required=True)
    edt.add_argument("--out", required=True)
    edt.add_argument("--image-column", default="image")
    edt.add_argument("--format", default="png", choices=["png", "jpeg", "webp"])
    edt.add_argument("--batch-size", type=int, default=256)
    edt.add_argument("--resize", default="native",
                     help="native (each image at its own size), square:<N>, shorter_side:<N> or longer_side:<N>")
    edt.set_defaults(func=cmd_edit)

    std = sub.add_parser("study", help="measure the method's claims on the shapes world (slow: trains many manipulators)")
    std.add_argument("what", choices=["indicator", "claim", "sdedit", "all"])
    _job_arguments(std)
    std.add_argument("--out", required=True, help="directory URL for tables and figures")
    std.add_argument("--grid", type=lambda v: [int(x) for x in v.split(",")],
                     default=[100, 200, 300, 400, 500, 600, 700, 800, 900], help="fixed timesteps to train at")
    std.add_argument("--worst-t", type=int, default=900, help="worst t for 'claim' when no sweep ran")
    std.add_argument("--strengths", type=_floats, default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    std.add_argument("--sdedit-guidance", type=float, default=None,
                     help="SDEdit CFG scale (default: the teacher's validated sampling scale)")
    std.add_argument("--sdedit-images", type=int, default=None, help="held-out images for SDEdit (default: eval.images)")
    std.add_argument("--steps", type=int, default=None, help="override distill.steps")
    std.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=None,
                     help="training seeds to repeat the sweep and the policy comparison over (default: distill.seed); "
                          "the tables report each seed and the mean with its spread")
    std.add_argument("--reuse", action="store_true",
                     help="keep the rows of --out's fixed_t_quality.csv / policy_comparison.csv measured with the "
                          "same recipe (config hash) and train only what is missing, e.g. to extend the grid or "
                          "the seeds; the hash does not see code changes")
    std.set_defaults(func=cmd_study, timestep_policy=None)

    demo = sub.add_parser("samples", help="a shapes dataset and teacher samples per prompt (no Ray)")
    demo.add_argument("--out", default="runs/samples")
    demo.add_argument("--n", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--per-prompt", type=int, default=8, help="teacher samples per prompt")
    demo.add_argument("--steps", type=int, default=None, help="sampling steps (default: the teacher's)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # ConfigError and ArtifactError are ValueErrors
        print(f"sdd: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
