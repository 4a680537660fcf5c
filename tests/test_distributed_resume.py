"""``ModelCheckpoint`` + ``initial_epoch`` resume a killed data-parallel job.

Rank 1 of an ``mpiexec -n 2`` job is SIGKILLed mid-epoch: the job ends within seconds,
non-zero; every rank then loads the newest checkpoint and continues with
``initial_epoch``, ending with the weights of the job that was never killed, bit for bit
(the epoch seeds depend on the epoch, and the optimizer state round-trips exactly).
"""
import os
import re
import sys

import neurec

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mpi"))
import dp_resume  # noqa: E402

from test_distributed_local import launch, mpi  # noqa: E402,F401

SCRIPT = os.path.join(HERE, "mpi", "dp_resume.py")


def finished(out):
    return sorted(re.findall(r"rank (\d) (\w+) epochs (\[[\d, ]*\]) steps (\d+) ([0-9a-f]{64})",
                             out))


def test_a_killed_job_resumes_from_its_checkpoint(mpi, tmp_path):  # noqa: F811
    rc, out, err, _ = launch(SCRIPT, ["full", tmp_path])
    assert rc == 0, err[-3000:]
    full = finished(out)
    assert [f[:3] for f in full] == [("0", "full", "[0, 1, 2]"), ("1", "full", "[0, 1, 2]")]
    rc, out, err, seconds = launch(SCRIPT, ["kill", tmp_path], timeout=120)
    assert rc != 0 and finished(out) == []
    assert seconds < 30
    epoch, path = dp_resume.newest_checkpoint(str(tmp_path))
    assert epoch == 1 and os.listdir(tmp_path) == ["ckpt-1.neurec"]  # no partial file
    steps_per_epoch = -(-1500 // dp_resume.BATCH)
    assert neurec.models.load_model(path).optimizer.iterations == steps_per_epoch
    rc, out, err, _ = launch(SCRIPT, ["resume", tmp_path])
    assert rc == 0, err[-3000:]
    resumed = finished(out)
    assert [f[:4] for f in resumed] == [
        ("0", "resume", "[1, 2]", str(3 * steps_per_epoch)),
        ("1", "resume", "[1, 2]", str(3 * steps_per_epoch))]
    assert resumed[0][4] == resumed[1][4] == full[0][4] == full[1][4]
