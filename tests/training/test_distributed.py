"""Data-parallel training with real torchrun processes (gloo on 127.0.0.1) against one process.

One 2-process run (local batch 2, 20 steps) is the reference of the module: it must end with the weights of
one process at batch 4 on the same tiles, only its rank 0 may write, and a 2-process run killed with SIGKILL
after a checkpoint and resumed must end identical to it. SGD: Adam(W) divides by sqrt(v), so a gradient
near 0 whose float rounding differs between 2 x 2 and 4 tiles moves a weight by up to lr either way; the
sums themselves agree to rounding (see biounet.training.distributed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from biounet.augmentation import Augmenter
from biounet.data.dataset import TileSampler, step_rng
from biounet.data.readers import Sample
from biounet.data.synthetic import generate
from biounet.data.targets import Target, touching_target
from biounet.io.images import write_image
from biounet.model import UNetConfig
from biounet.training.config import ConfigError, TrainConfig, read_config_file
from biounet.training.distributed import DistributedContext, ShardedSampler, adapt_config, agree
from biounet.training.launch import free_port
from biounet.training.state import load_state
from biounet.training.trainer import train

STEPS = 20
CONFIG = {
    "model": {"depth": 2, "base_channels": 4, "padding": "valid", "norm": "group", "group_norm_groups": 2,
              "dropout": 0.0},
    "tile_shape": [60], "batch_size": 2, "precision": "fp32", "device": "cpu", "steps": STEPS, "seed": 3,
    "log_every": 5, "val_every": STEPS, "checkpoint_every": 2,
    "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "warmup_steps": 0, "ema": 0.9},
    "data": {"target": {"kind": "instances"}, "val_split": 0.34},
}

#: Runs inside torchrun: first the loss check of LOSS_CHECK, then `biounet train` (in the same gloo group),
#: recording every file this rank creates, writes, renames or removes under the run directory.
AUDITED_CLI = textwrap.dedent('''
    import json, os, sys
    import torch.distributed as dist
    dist.init_process_group("gloo")
    loss_check(int(os.environ["RANK"]))
    watched, events = os.path.realpath(sys.argv[1]), []
    def hook(event, args):
        if event in ("open", "os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree") and args:
            path = args[1] if event == "os.rename" else args[0]  # where an atomic write lands
            writes = event != "open" or (isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            real = os.path.realpath(path) if isinstance(path, str) else ""
            if writes and (real == watched or real.startswith(watched + os.sep)):
                events.append([event, path])
    sys.addaudithook(hook)
    from biounet.cli.main import main
    status = main(sys.argv[2:])
    with open(f"{sys.argv[1]}-events-rank{os.environ['RANK']}.json", "w") as out:
        json.dump(events, out)
    dist.destroy_process_group()
    sys.exit(status)
''')

#: DDP's averaged gradient of GlobalBatchLoss on 2 ranks whose tiles count different pixels (ignored ones)
#: must be one process's gradient of the weighted loss on all 4 tiles.
LOSS_CHECK = textwrap.dedent('''
    import copy
    import sys
    import torch
    from biounet.losses import ClassAndDistanceLoss, build_loss
    from biounet.training.distributed import DistributedContext, GlobalBatchLoss

    def loss_check(rank):
        torch.manual_seed(0)
        images, weights = torch.randn(4, 2, 6, 6), 1 + 5 * torch.rand(4, 6, 6)
        target = torch.randint(0, 2, (4, 6, 6))
        target[:2, :4] = -1  # rank 0's tiles count 12 pixels each, rank 1's 36: shares 1/4 and 3/4
        network = torch.nn.Conv2d(2, 2, 1)
        alone = copy.deepcopy(network)
        criterion = GlobalBatchLoss(build_loss("wce"), DistributedContext(rank, 2, rank, 2))
        mine = slice(2 * rank, 2 * rank + 2)
        ddp = torch.nn.parallel.DistributedDataParallel(network)
        criterion(ddp(images[mine]), target[mine], weights[mine]).backward()
        whole = build_loss("wce")(alone(images), target, weights)
        whole.backward()
        torch.testing.assert_close(criterion.value, float(whole), rtol=1e-6, atol=0)
        for ours, reference in zip(network.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-5, atol=1e-7)
        distance_check(rank, images, weights, target)
        print("loss check passed", file=sys.stderr)

    def distance_check(rank, images, weights, target):
        """With a distance output the class term is scaled by its counted pixels, the distance term by all the
        pixels of the rank's tiles: ranks of 1 and 3 tiles give one process's loss and gradient on all 4."""
        distance = torch.rand(4, 6, 6)
        network = torch.nn.Conv2d(2, 3, 1)
        alone = copy.deepcopy(network)
        loss = ClassAndDistanceLoss(build_loss("wce"), distance_channel=2, distance_weight=0.7)
        criterion = GlobalBatchLoss(loss, DistributedContext(rank, 2, rank, 2))
        mine = slice(0, 1) if rank == 0 else slice(1, 4)
        ddp = torch.nn.parallel.DistributedDataParallel(network)
        criterion(ddp(images[mine]), target[mine], weights[mine], distance[mine]).backward()
        whole = loss(alone(images), target, weights, distance)
        whole.backward()
        torch.testing.assert_close(criterion.value, float(whole), rtol=1e-6, atol=0)
        for ours, reference in zip(network.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-5, atol=1e-7)
''')


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *args]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    for index in range(3):
        image, labels = generate("nuclei", (64, 64), index, radius_range=(6, 10))
        write_image(root / "images" / f"n{index}.tif", image.astype(np.float32))
        write_image(root / "masks" / f"n{index}.tif", labels.astype(np.uint16))
    (root / "config.json").write_text(json.dumps(CONFIG))
    return root


def train_args(data: Path, run_dir: Path) -> list[str]:
    return ["train", "--config", str(data / "config.json"), "--images", str(data / "images"), "--masks",
            str(data / "masks"), "--out", str(run_dir), "--no-progress"]


@pytest.fixture(scope="module")
def two_ranks(data: Path) -> Path:
    """The reference: torchrun, 2 processes at batch 2, their stderr in logs/, their writes in events files."""
    run_dir = data / "two"
    script = data / "audited_cli.py"
    script.write_text(LOSS_CHECK + AUDITED_CLI)
    command = torchrun("--log-dir", str(data / "logs"), "--redirects", "3", str(script), str(run_dir),
                       *train_args(data, run_dir))
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=atol), f"{key}: {(a[key] - b[key]).abs().max()}"


def test_two_ranks_train_like_one_process_at_the_global_batch(two_ranks: Path, tmp_path: Path):
    saved = read_config_file(two_ranks / "config.json")
    assert saved["world_size"] == 2 and saved["global_batch_size"] == 4 and saved["batch_size"] == 2
    # one thread, as each of the 2 ranks on 2 cores had (also far faster than 2 threads on a busy machine)
    single = TrainConfig.from_dict({**saved, "batch_size": 4, "world_size": 1, "global_batch_size": None,
                                    "num_threads": 1})
    result = train(single, tmp_path / "one", progress=False, context=DistributedContext())
    assert result.steps == STEPS
    ranks, one = load_state(two_ranks), load_state(tmp_path / "one")
    assert ranks.step == one.step == STEPS
    assert_same_tensors(ranks.model, one.model, atol=1e-5)
    losses = [[row["train_loss"] for row in json.loads((run / "history.json").read_text())["rows"]
               if row["kind"] == "train"] for run in (two_ranks, tmp_path / "one")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)  # the global batch's loss is logged


def test_only_rank_0_writes_and_speaks(two_ranks: Path):
    rank0 = json.loads(Path(f"{two_ranks}-events-rank0.json").read_text())
    rank1 = json.loads(Path(f"{two_ranks}-events-rank1.json").read_text())
    written = {Path(path).name for _, path in rank0}
    assert {"config.json", "train.log"} <= written and any("latest.json" in name for name in written)
    assert rank1 == []
    (stderr1,) = two_ranks.parent.glob("logs/**/attempt_0/1/stderr.log")
    (stderr0,) = two_ranks.parent.glob("logs/**/attempt_0/0/stderr.log")
    assert "biounet" not in stderr1.read_text() and "finished at step 20" in stderr0.read_text()


def test_weighted_loss_is_normalised_over_the_global_batch(two_ranks: Path):
    """LOSS_CHECK ran on both ranks before the training (an assertion there fails the run)."""
    for rank in (0, 1):
        (stderr,) = two_ranks.parent.glob(f"logs/**/attempt_0/{rank}/stderr.log")
        assert "loss check passed" in stderr.read_text()


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher, torchrun and every worker at once (a node lost or a job killed)."""
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for proc in tree:
        proc.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_sigkilled_two_rank_run_resumes_to_the_same_weights(data: Path, two_ranks: Path):
    run_dir = data / "killed"
    command = [sys.executable, "-m", "biounet", *train_args(data, run_dir), "--nproc", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = run_dir / "state" / "latest.json"
    deadline = time.monotonic() + 180
    while not manifest.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_tree(process)
    killed_at = json.loads(manifest.read_text())["step"]
    assert killed_at < STEPS, "the run ended before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "biounet", "train", "--out", str(run_dir), "--resume",
                              "--nproc", "2", "--no-progress"], capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from step {killed_at}" in resumed.stderr
    reference, again = load_state(two_ranks), load_state(run_dir)
    assert again.step == STEPS
    assert_same_tensors(reference.model, again.model)
    assert_same_tensors(reference.ema, again.ema)


def test_each_rank_draws_its_slice_of_the_global_batch():
    """Tile i of a step comes from its own generator: ranks 0 and 1 at batch 2 draw one process's batch of 4."""
    instances = np.zeros((48, 48), np.int32)
    instances[8:30, 6:26], instances[20:44, 26:44] = 1, 2
    image = np.random.default_rng(0).random((1, 48, 48), np.float32)
    sample = Sample("s", image, Target(touching_target(instances), instances), Path("s.png"))
    model = UNetConfig(depth=2, base_channels=4, padding="valid", num_classes=3)
    tiles = TileSampler([sample], model, (60, 60), Augmenter(TrainConfig().augmentation, 2), use_weights=False)
    whole = ShardedSampler(tiles).batch(4, step_rng(5, 7))
    parts = [ShardedSampler(tiles, rank, 2).batch(2, step_rng(5, 7)) for rank in (0, 1)]
    np.testing.assert_array_equal(np.concatenate([p.images for p in parts]), whole.images)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), whole.labels)
    assert not np.array_equal(parts[0].images, parts[1].images)
    assert not np.array_equal(ShardedSampler(tiles).batch(4, step_rng(5, 8)).images, whole.images)


def test_context_from_torchrun_environment():
    assert DistributedContext.from_env({}) == DistributedContext()
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    context = DistributedContext.from_env(env)
    assert (context.rank, context.world_size, context.local_rank, context.enabled, context.is_main) == (
        3, 4, 1, True, False)
    with pytest.raises(ConfigError, match="inconsistent"):
        DistributedContext.from_env({**env, "RANK": "4"})
    # one process: its own clock and signal decide
    assert agree(DistributedContext(), torch.device("cpu"), 12.5, True, None) == (12.5, "time")
    assert agree(DistributedContext(), torch.device("cpu"), 1.0, False, int(signal.SIGTERM)) == (1.0, "SIGTERM")
    assert os.environ.get("WORLD_SIZE") is None  # the suite itself is not inside torchrun


def test_batch_norm_becomes_group_norm_on_cpu_ranks_and_the_config_says_how_the_run_was_made():
    config = TrainConfig()  # the default recipe: batch norm
    adapt_config(config, DistributedContext(0, 2, 0, 2), torch.device("cpu"))
    assert (config.model.norm, config.world_size, config.global_batch_size) == ("group", 2, 2 * config.batch_size)
    gpu = TrainConfig()  # on CUDA the ranks keep batch norm (SyncBatchNorm)
    adapt_config(gpu, DistributedContext(0, 2, 0, 2), torch.device("cuda", 0))
    assert gpu.model.norm == "batch"
    alone = TrainConfig()
    adapt_config(alone, DistributedContext(), torch.device("cpu"))
    assert (alone.model.norm, alone.world_size, alone.global_batch_size) == ("batch", 1, alone.batch_size)
