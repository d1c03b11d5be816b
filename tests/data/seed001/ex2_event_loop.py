# seed 001's own NameError fixed: submit_async(f, ...) -> submit_async(flux_handle, ...)
import flux
import flux.job

def submit_cb(fut, flux_handle):
	# when this callback fires, the jobid will be ready
	jobid = fut.get_id()
	# Create a future representing the result of the job
	result_fut = flux.job.result_async(flux_handle, jobid)
	# attach a callback to fire when the job finishes
	result_fut.then(result_cb)

def result_cb(fut):
	print(fut.get_info())

flux_handle = flux.Flux()
jobspec = flux.job.JobspecV1.from_command(["/bin/true"])
for _ in range(5):
	# submit 5 futures and attach callbacks to each one
	submit_future = flux.job.submit_async(flux_handle, jobspec)
	submit_future.then(submit_cb, flux_handle)
# enter the flux event loop (the 'reactor') to trigger the callbacks
# once the futures complete
flux_handle.reactor_run()
