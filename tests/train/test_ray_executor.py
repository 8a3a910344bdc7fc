"""Jobs as Ray tasks on a real local Ray: several at once, a hung job stopped at its budget."""

import pytest

from mixopt.train.executors import TrainerRef
from mixopt.train.spec import JobSpec

MIX = {"web": 0.5, "code": 0.3, "math": 0.2}
HANG_BUDGET_S = 20.0


@pytest.mark.slow
def test_ray_runs_jobs_and_stops_a_hung_one(tmp_path, job_command):
    pytest.importorskip("ray")
    from mixopt.train.ray_executor import RayJobExecutor

    ex = RayJobExecutor(max_parallel=3, num_cpus=3)
    try:
        ok_jobs = [JobSpec(run_id=f"ok{i}", mixture=MIX, params=1e8, tokens=2e9, seed=i, checkpoints=2) for i in range(2)]
        ok = ex.run(ok_jobs, TrainerRef(kind="command", settings={"command": job_command("ok")}), tmp_path, timeout_s=300)
        assert [r.status for r in ok] == ["ok", "ok"] and ok[0].table.n_runs == 1
        hang = ex.run([JobSpec(run_id="hang", mixture=MIX, params=1e8, tokens=2e9)],
                      TrainerRef(kind="command", settings={"command": job_command("hang")}), tmp_path, timeout_s=HANG_BUDGET_S)
        assert hang[0].status == "timeout" and hang[0].wall_s < HANG_BUDGET_S + 10
        assert ex.gpus_per_job == 0.0 and ex.cpus_per_job == 1.0
    finally:
        ex.close()
