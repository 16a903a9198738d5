"""The clip-zeroshot adapter against a bare open_clip encode loop: same model, batch size and images.

    python benchmarks/bench_clip.py [--images 300] [--batch-size 32] [--size 64] [--repeats 3]

No model hub: the model is the tiny open_clip config the tests register (tests/models/test_clip.py:
a 1-layer ViT on 32 px images), its random weights saved to a local checkpoint that both sides load.
The images are random RGB PNGs of --size pixels. Both sides decode every image (PIL), run the model's
own preprocessing and ``encode_image`` in batches of --batch-size, normalise, and score against the
class embeddings of the same prompt templates (encoded once per run, inside the timing on both sides).

- bare: that loop written directly against open_clip;
- adapter cold: ``ClipZeroShot.predict`` on a Dataset of the same images, with an empty cache;
- adapter warm: the same call again on that cache (--repeats times), with ``encode_image`` and
  ``encode_text`` counted;
- adapter warm, touched: every image's mtime changed (content not), so the stat-keyed digests miss:
  each image is read and hashed again, and the content digests still find every cached answer.

After one untimed run of each, bare and cold alternate --repeats times (which goes first alternates
too; the machine is shared) and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

COMMAND = "python benchmarks/bench_clip.py"
ARCH = "fer-bench-tiny-clip"
# The test suite's tiny model (tests/models/test_clip.py), under its own name here.
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TARGETS = {"adapter / bare": 1.10, "warm / cold": 0.05}


def save_tiny_model(folder: Path) -> Path:
    import open_clip
    import torch

    config = folder / f"{ARCH}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = folder / "tiny.pt"
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights": random ones are the point
    try:
        torch.save(open_clip.create_model(ARCH).state_dict(), checkpoint)
    finally:
        logging.getLogger().setLevel(quiet)
    return checkpoint


def make_dataset(folder: Path, *, images: int, size: int):
    from PIL import Image

    from fer_fairness.datasets._table import Dataset
    from fer_fairness.labels import EMOTIONS

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(images):
        name = f"img{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), mode="RGB").save(folder / name)
        rows.append({"sample_id": f"s{i:05d}", "path": name, "emotion": EMOTIONS[i % len(EMOTIONS)], "group": "a"})
    # The digest store trusts no file changed in the 2 s before it was hashed (_digests.RACY_NS); a
    # real dataset is not written moments before a run, so neither is this one.
    time.sleep(2.1)
    samples = pd.DataFrame(rows)
    samples["subject_id"] = samples["sample_id"]
    return Dataset(name="bench", root=folder, samples=samples, attributes=("group",), emotions=tuple(EMOTIONS))


class BareLoop:
    """The loop a user would write with open_clip alone."""

    def __init__(self, checkpoint: Path, *, batch_size: int):
        import open_clip
        import torch

        self.torch = torch
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=str(checkpoint))
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(ARCH)
        self.batch_size = batch_size

    def predict(self, paths: list[Path], labels: list[str]) -> np.ndarray:
        from PIL import Image

        from fer_fairness.models.clip import DEFAULT_TEMPLATES, render

        torch = self.torch
        with torch.inference_mode():
            classes = []
            for label in labels:
                tokens = self.tokenizer([render(t, label) for t in DEFAULT_TEMPLATES])
                mean = self.model.encode_text(tokens, normalize=True).mean(0)
                classes.append(mean / mean.norm())
            text = torch.stack(classes)
            scale = self.model.logit_scale.exp()
            best = []
            for start in range(0, len(paths), self.batch_size):
                pixels = []
                for path in paths[start : start + self.batch_size]:
                    with Image.open(path) as image:
                        pixels.append(self.preprocess(image.convert("RGB")))
                features = self.model.encode_image(torch.stack(pixels), normalize=True)
                best.append((scale * features @ text.T).softmax(dim=-1).argmax(dim=-1))
            return torch.cat(best).numpy()


def counting(obj, name: str, counts: dict[str, int]) -> None:
    """Wrap ``obj.name`` so every call is counted in ``counts[name]``."""
    original = getattr(obj, name)
    counts[name] = 0

    def wrapper(*args, **kwargs):
        counts[name] += 1
        return original(*args, **kwargs)

    setattr(obj, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for both sides")
    args = parser.parse_args(argv)
    print(
        f"command: {COMMAND} --images {args.images} --batch-size {args.batch_size} --size {args.size} "
        f"--repeats {args.repeats} --threads {args.threads}"
    )
    import torch

    # One thread by default: on a shared machine, torch's thread pool contending for cores is most of the noise.
    torch.set_num_threads(args.threads)
    from fer_fairness.models import MODELS
    from fer_fairness.models._base import PredictContext
    from fer_fairness.models.clip import ClipZeroShot

    with tempfile.TemporaryDirectory(prefix="fer-bench-clip-") as tmp:
        root = Path(tmp)
        checkpoint = save_tiny_model(root)
        dataset = make_dataset(root / "images", images=args.images, size=args.size)
        paths = [dataset.root / p for p in dataset.samples["path"]]
        labels = list(dataset.emotions)
        bare = BareLoop(checkpoint, batch_size=args.batch_size)
        adapter = ClipZeroShot(MODELS.parse(f"clip-zeroshot:{ARCH}@{checkpoint}?batch_size={args.batch_size}"))

        # One untimed run of each side first: torch's first calls allocate and the files enter the page
        # cache; which side went first otherwise decided a few percent.
        bare.predict(paths, labels)
        adapter.predict(dataset, context=PredictContext(seed=0, cache_dir=root / "warm-up", progress=False))
        bare_s, cold_s = [], []
        for repeat in range(args.repeats):
            context = PredictContext(seed=0, cache_dir=root / f"cache{repeat}", progress=False)
            for side in ("bare", "cold") if repeat % 2 == 0 else ("cold", "bare"):  # alternate who goes first
                start = time.perf_counter()
                if side == "bare":
                    bare_best = bare.predict(paths, labels)
                    bare_s.append(time.perf_counter() - start)
                else:
                    cold = adapter.predict(dataset, context=context)
                    cold_s.append(time.perf_counter() - start)
        # Same weights, same images: the adapter must pick what the bare loop picks.
        agree = float((np.asarray(labels)[bare_best] == cold["outcome"].to_numpy()).mean())

        counts: dict[str, int] = {}
        counting(adapter.embedder.model, "encode_image", counts)
        counting(adapter.embedder.model, "encode_text", counts)
        warm_s, same_warm = [], True
        for _ in range(args.repeats):
            start = time.perf_counter()
            warm = adapter.predict(dataset, context=context)
            warm_s.append(time.perf_counter() - start)
            same_warm = same_warm and warm.equals(cold)
        calls = dict(counts)
        for path in paths:  # new mtimes, same bytes; old enough to be trusted again afterwards
            os.utime(path, ns=(time.time_ns() - 10**10, time.time_ns() - 10**10))
        time.sleep(2.1)  # the touch moved ctime, which the digest store also waits out
        start = time.perf_counter()
        touched = adapter.predict(dataset, context=context)
        touched_s = time.perf_counter() - start
        same_warm = same_warm and touched.equals(cold)

    bare_m, cold_m, warm_m = statistics.median(bare_s), statistics.median(cold_s), statistics.median(warm_s)
    print(f"images: {args.images} of {args.size} px, batch size {args.batch_size}, prompt labels {len(labels)}")
    print(f"bare seconds:         {' '.join(f'{s:.3f}' for s in bare_s)}")
    print(f"adapter cold seconds: {' '.join(f'{s:.3f}' for s in cold_s)}")
    print(f"adapter warm seconds: {' '.join(f'{s:.4f}' for s in warm_s)}")
    print(f"adapter warm, images touched: {touched_s:.4f}")
    print(f"same answers as bare: {agree:.3f}; warm tables equal to the cold one: {same_warm}")
    print(f"{'measure':<22}{'ratio':>8}{'target':>8}")
    print(f"{'adapter / bare':<22}{cold_m / bare_m:>8.3f}{'< ' + str(TARGETS['adapter / bare']):>8}")
    print(f"{'warm / cold':<22}{warm_m / cold_m:>8.3f}{'< ' + str(TARGETS['warm / cold']):>8}")
    print(f"{'warm touched / cold':<22}{touched_s / cold_m:>8.3f}{'-':>8}")
    print(f"warm model calls: encode_image {calls['encode_image']}, encode_text {calls['encode_text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
