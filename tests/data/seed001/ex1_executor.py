import concurrent.futures
import flux.job

jobspec = flux.job.JobspecV1.from_command(["/bin/true"])
with flux.job.FluxExecutor() as executor:
	futs = [executor.submit(jobspec) for _ in range(5)]
	for f in concurrent.futures.as_completed(futs):
		print(f.result())
