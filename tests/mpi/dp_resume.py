"""Resume a killed data-parallel job, for tests/test_distributed_resume.py.

    mpiexec -n 2 python dp_resume.py MODE OUT_DIR

MODE: full (3 epochs straight through) | kill (rank 1 SIGKILLs itself mid-way through
the second epoch, after the first checkpoint) | resume (every rank loads the newest
checkpoint and continues with ``initial_epoch``).
"""
import glob
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_fit  # noqa: E402

EPOCHS, BATCH, SEED = 3, 16, 21


def newest_checkpoint(out):
    """(epoch, path) of the newest ``ckpt-{epoch}.neurec`` in ``out``."""
    found = [(int(re.search(r"ckpt-(\d+)", p).group(1)), p)
             for p in glob.glob(os.path.join(out, "ckpt-*.neurec"))]
    return max(found)


def main(mode, out):
    import neurec
    from neurec import callbacks, distribution
    distribution.initialize()
    distribution.set_distribution(distribution.DataParallel())
    rank = distribution.rank()
    x, y = dp_fit.data()
    cbs, initial = [], 0
    if mode == "resume":
        initial, path = newest_checkpoint(out)  # the file of epoch e holds e epochs
        model = neurec.models.load_model(path)
    else:
        model = dp_fit.build()
    if mode == "kill":
        epoch = [0]

        def die(batch, logs):
            if rank == 1 and epoch[0] == 1 and batch >= 40:
                os.kill(os.getpid(), signal.SIGKILL)

        cbs = [callbacks.ModelCheckpoint(os.path.join(out, "ckpt-{epoch}.neurec")),
               callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epoch.__setitem__(0, e),
                                        on_train_batch_end=die)]
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, initial_epoch=initial,
                        seed=SEED, verbose=0, callbacks=cbs)
    print(f"rank {rank} {mode} epochs {history.epoch} steps {model.optimizer.iterations} "
          f"{dp_fit.digest(model)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ".")
