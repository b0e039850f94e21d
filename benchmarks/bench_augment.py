"""The Ray Data augment job against its limit, and its memory as the input grows.

    python benchmarks/bench_augment.py --manipulators runs/demo/run [--rows 2000] [--big-rows 20000] [--layout default|one-actor]

1. Throughput: input images per second of ``pipelines/augment.py`` on a local Ray against a
   single-process loop doing the same work (read, decode, every manipulator, judge
   columns, PNG encode, write Parquet) on the same cores with no Ray. Target: >= 85%.
   ``--layout default`` runs the job as a user gets it (no config: one 1-thread edit actor
   per core); ``--layout one-actor`` gives one edit actor as many torch threads as the loop
   has (the loop's own layout inside the job). A job starts cold (Ray Data
   plan, actor start, oneDNN warm-up) while the loop's median is warm, so the ratio is also
   reported for ``--big-rows``, where those fixed costs are spread over 10x the rows.
2. Memory: peak memory of the whole job (driver plus every Ray process, sampled every 0.2 s)
   for ``--rows`` and ``--big-rows`` inputs. Streaming means the second must stay <= 1.2x.
   Memory is the sum of PSS (proportional set size): the object store is shared memory
   that every Ray process maps, and summing RSS counts each shared page once per process.
   Reading PSS of ~25 processes five times a second costs the bench about a fifth of a core
   (``sampler_cpu_s``), which a 2-core job feels: memory is measured in runs of its own, and
   the timed runs only read CPU times, once a second.
3. Where the job's CPU goes (``cpu_s_*``): CPU seconds of every process of the job (driver,
   edit actors, task workers, raylet, GCS, dashboard, ...), from the timed runs. The loop
   spends all of its CPU on the row work; what the job spends elsewhere is its overhead.

4. ``--workload photos``: the same, on real sizes: scikit-image's bundled photographs
   (astronaut 512x512, chelsea 451x300, coffee 600x400, rocket 640x427, camera 512x512
   grayscale) repeated to ``--rows`` JPEG rows, every one edited at its own size. Beside
   the job and the loop it reports each row step alone, in images per second on one core
   (``stage_*``: decode, edit, encode), and the codec alone (decode then encode, no
   manipulator): the limit when the manipulator is cheap. ``--format`` sets the output
   codec of every run.

Each Ray run starts its own local Ray in a subprocess, so no state leaks between them.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parser, report, setup  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def make_input(url: str, rows: int, workload: str = "shapes") -> None:
    if workload == "shapes":
        from sdd.domains.shapes.dataset import write_shapes_dataset

        write_shapes_dataset(url, rows, seed=30_000)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    photos = photo_cells()
    cells = [photos[i % len(photos)] for i in range(rows)]
    pq.write_table(pa.table({"id": pa.array(range(rows), pa.int64()),
                             "image": pa.array(cells, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))}),
                   url, row_group_size=256)


def photo_cells() -> list[dict]:
    """scikit-image's bundled photographs, JPEG-encoded (quality 90), as HF image cells."""
    import io

    from PIL import Image
    from skimage import data

    cells = []
    for name in PHOTOS:
        pixels = getattr(data, name)()
        buf = io.BytesIO()
        Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB").save(buf, "JPEG", quality=90)
        cells.append({"bytes": buf.getvalue(), "path": None})
    return cells


def stage_rates(manipulators: list[str], image_format: str, n: int = 40) -> dict:
    """Images per second on one core of each row step alone on the photos, and of the codec
    alone (decode, then encode the decoded image unedited)."""
    import torch

    from pipelines.augment import resolve_manipulators
    from sdd.artifacts import load_manipulator
    from sdd.io.images import decode_image, encode_image, from_tensor_range, to_tensor_range

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        artifacts = [load_manipulator(u) for u in resolve_manipulators(manipulators)]
        cells = [photo_cells()[i % len(PHOTOS)]["bytes"] for i in range(n)]
        start = time.perf_counter()
        decoded = [decode_image(c) for c in cells]
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        edited = [from_tensor_range(a.edit(to_tensor_range(img[None])))[0] for img in decoded for a in artifacts]
        edit_s = time.perf_counter() - start
        start = time.perf_counter()
        for img in edited:
            encode_image(img, image_format)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        for c in cells:
            encode_image(decode_image(c), image_format)
        codec_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    edits = len(edited)
    return {"stage_decode_images_per_s": round(n / decode_s, 1), "stage_edit_images_per_s": round(edits / edit_s, 1),
            "stage_encode_images_per_s": round(edits / encode_s, 1), "codec_alone_images_per_s": round(n / codec_s, 1),
            "mean_megapixels": round(sum(d.shape[0] * d.shape[1] for d in decoded) / n / 1e6, 3)}


def loop_once(input_url: str, output_dir: str, manipulators: list[str], batch_size: int,
              image_format: str = "png") -> None:
    """The no-Ray limit: the job's own row functions, one process, batch by batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.augment import resolve_manipulators
    from sdd.artifacts import load_manipulator
    from sdd.augment import augment_rows, split_rows
    from sdd.domains.shapes.judge import ShapesJudge
    from sdd.domains.shapes.spec import ATTRIBUTES

    artifacts = [load_manipulator(u) for u in resolve_manipulators(manipulators)]
    # the job's rule: judge columns when every manipulator was distilled from the shapes teacher
    shapes = all(str(a.manifest.get("teacher_id", "")).startswith("shapes-teacher@") for a in artifacts)
    judge = ShapesJudge.from_pretrained() if shapes else None
    parquet = pq.ParquetFile(input_url)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    for i, batch in enumerate(parquet.iter_batches(batch_size=batch_size)):
        table = pa.Table.from_batches([batch])
        table = augment_rows(table, artifacts, image_column="image", source_ids=table.column("id"),
                             max_pixels=64_000_000, image_format=image_format, judge=judge, judge_names=ATTRIBUTES)
        data, _ = split_rows(table)
        pq.write_table(data, f"{output_dir}/part-{i:05d}.parquet")


def pss_bytes(pid: int) -> int:
    """Proportional set size from /proc/<pid>/smaps_rollup (cheap, unlike a full smaps walk:
    the sampler must not steal the job's CPU)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_role(proc, root_pid: int, seen: str) -> str:
    """Which part of the job a process is, from its command line (Ray workers retitle
    themselves per task: ``seen`` is every title this pid has had, `` | ``-separated). Only
    the program and its script are matched: arguments name other parts (every worker carries
    ``--raylet-name=...``, the raylet carries the worker command)."""
    if proc.pid == root_pid:
        return "driver"
    if "EditBatch" in seen or "MapWorker" in seen:
        return "edit_actors"
    heads = " ".join(" ".join(title.split()[:3]) for title in seen.split(" | ") if title)
    for marker, role in (("workers/default_worker.py", "task_workers"), ("raylet/raylet ", "raylet"),
                         ("gcs/gcs_server", "gcs_server"), ("dashboard/agent.py", "dashboard_agent"),
                         ("dashboard/dashboard.py", "dashboard"), ("ray-dashboard-", "dashboard"),
                         ("log_monitor.py", "log_monitor"),
                         ("runtime_env/agent", "runtime_env_agent"), ("autoscaler/_private/monitor.py", "monitor"),
                         ("ray::", "task_workers")):  # last: a worker's title once it has started
        if marker in heads + " ":
            return role
    return "dashboard" if "ray.dashboard" in seen else "other"  # its forkserver children


def cpu_breakdown(samples: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per role, from the last sample of each process."""
    out: dict[str, float] = {}
    for role, seconds in samples.values():
        out[role] = out.get(role, 0.0) + seconds
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def job_config(work: Path, layout: str, threads: int, batch_size: int, image_format: str = "png") -> str:
    """``default``: no settings (what `pipelines/augment.py` does on its own); ``one-actor``: one
    edit actor with as many torch threads as the loop (all cores). A ``batch_size`` other than
    the job's default is set too, so that the job's blocks are the loop's batches."""
    from pipelines.augment import AugmentConfig

    settings = {"resources": {"num_cpus": threads}} if layout == "one-actor" else {}
    if batch_size != AugmentConfig.model_fields["batch_size"].default:
        settings["batch_size"] = batch_size
    if image_format != "png":
        settings["format"] = image_format
    path = work / "augment.yaml"
    path.write_text(json.dumps(settings) + "\n")  # JSON is YAML
    return str(path)


def ray_job(input_url: str, output_dir: str, manipulators: list[str], config: str, memory: bool = False) -> dict:
    """Run the augment job in a subprocess; returns its seconds, CPU seconds per role and, with
    ``memory``, its sampled peak memory (MB, PSS)."""
    import psutil

    cmd = [sys.executable, "pipelines/augment.py", "--input", input_url, "--output", output_dir,
           "--manipulators", ",".join(manipulators), "--config", config]
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, sampler_cpu = 0.0, 0.0
    done = threading.Event()
    titles: dict[int, str] = {}
    cpu: dict[int, tuple[str, float]] = {}

    def sample():
        nonlocal peak, sampler_cpu
        root = psutil.Process(proc.pid)
        while not done.is_set():
            sampler_cpu = time.thread_time()
            procs = []
            try:
                procs = [root] + root.children(recursive=True)
                if memory:
                    peak = max(peak, sum(pss_bytes(p.pid) for p in procs) / 2**20)
            except psutil.Error:
                pass
            for p in procs:
                try:
                    title = " ".join(p.cmdline())  # empty for a process still starting or exiting
                    seen = titles.setdefault(p.pid, "")
                    if title and title not in seen:
                        titles[p.pid] = seen + " | " + title
                    times = p.cpu_times()
                    cpu[p.pid] = (process_role(p, proc.pid, titles[p.pid]), times.user + times.system)
                except psutil.Error:
                    pass
            time.sleep(0.2 if memory else 1.0)

    failures: list[Exception] = []

    def sample_or_record_failure():
        try:
            sample()
        except Exception as exc:  # a dead sampler would leave a partial peak and CPU breakdown
            failures.append(exc)

    sampler = threading.Thread(target=sample_or_record_failure, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"augment job failed:\n{out[-4000:]}")
    if failures:
        raise RuntimeError("the memory and CPU sampler failed mid-job; its figures would be partial") from failures[0]
    manifest = json.loads((Path(output_dir) / "manifest.json").read_text())
    # the job's own wall time (inside augment(): plan, run, finalize, manifest), not Ray's start
    return {"seconds": manifest["wall_seconds"], "with_startup": seconds, "peak_mb": peak, "counts": manifest["counts"],
            "cpu_s": cpu_breakdown(cpu), "sampler_cpu_s": round(sampler_cpu, 1)}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--manipulators", required=True, help="comma-separated artifact or registry URLs")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--big-rows", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=256, help="rows per block (job) and per batch (loop)")
    p.add_argument("--layout", choices=("default", "one-actor"), default="default",
                   help="the job's edit actors: its defaults, or one actor with the loop's threads")
    p.add_argument("--workload", choices=("shapes", "photos"), default="shapes",
                   help="32-px shapes images, or real photographs at their own sizes (451x300 to 640x427)")
    p.add_argument("--format", choices=("png", "jpeg", "webp"), default="png", help="output image codec")
    args = p.parse_args()
    setup(args)
    manipulators = args.manipulators.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench_augment_"))
    import torch

    config = job_config(work, args.layout, torch.get_num_threads(), args.batch_size, args.format)
    try:
        small, big = str(work / "small.parquet"), str(work / "big.parquet")
        make_input(small, args.rows, args.workload)
        loop_s, ray_s, ray_total, loop_cpu = [], [], [], []
        for r in range(args.repeats):
            out = work / f"loop{r}"
            start, cpu_start = time.perf_counter(), time.process_time()
            loop_once(small, str(out), manipulators, args.batch_size, args.format)
            loop_s.append(time.perf_counter() - start)
            loop_cpu.append(time.process_time() - cpu_start)
            shutil.rmtree(out)
            job = ray_job(small, str(work / f"ray{r}"), manipulators, config)
            ray_s.append(job["seconds"])
            ray_total.append(job["with_startup"])
            shutil.rmtree(work / f"ray{r}")
        small_memory = ray_job(small, str(work / "ray_mem"), manipulators, config, memory=True)
        make_input(big, args.big_rows, args.workload)
        big_job = ray_job(big, str(work / "ray_big"), manipulators, config)
        shutil.rmtree(work / "ray_big")
        big_memory = ray_job(big, str(work / "ray_big_mem"), manipulators, config, memory=True)
        loop_ips, ray_ips = args.rows / statistics.median(loop_s), args.rows / statistics.median(ray_s)
        stages = stage_rates(manipulators, args.format) if args.workload == "photos" else {}
        report("bench_augment", {
            "workload": args.workload, "format": args.format, **stages,
            "layout": args.layout, "rows": args.rows, "edits_per_row": job["counts"]["edits_per_row"],
            "loop_images_per_s": round(loop_ips, 1), "ray_images_per_s": round(ray_ips, 1),
            "ray_vs_loop": round(ray_ips / loop_ips, 3),
            "big_ray_images_per_s": round(args.big_rows / big_job["seconds"], 1),
            "big_ray_vs_loop": round(args.big_rows / big_job["seconds"] / loop_ips, 3),
            "ray_job_s": round(statistics.median(ray_s), 1), "ray_s_with_startup": round(statistics.median(ray_total), 1),
            "loop_s": round(statistics.median(loop_s), 1),
            "peak_mb_rows": round(small_memory["peak_mb"]), "big_rows": args.big_rows,
            "peak_mb_big_rows": round(big_memory["peak_mb"]),
            "memory_ratio": round(big_memory["peak_mb"] / small_memory["peak_mb"], 2),
            "sampler_cpu_s_timed": job["sampler_cpu_s"], "sampler_cpu_s_memory": small_memory["sampler_cpu_s"],
            "loop_cpu_s": round(statistics.median(loop_cpu), 1),
            **{f"cpu_s_{role}": s for role, s in job["cpu_s"].items()},
            **{f"big_cpu_s_{role}": s for role, s in big_job["cpu_s"].items()},
        }, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
