# ensure the script is running in an active flux instance
import asyncio
from flux.asyncio import loop
import flux.job

fluxsleep = flux.job.JobspecV1.from_command(['sleep', '2'])
fluxecho = flux.job.JobspecV1.from_command(['echo', 'pancakes'])

tasks = [
   loop.create_task(asyncio.sleep(5)),
   loop.create_task(flux.asyncio.submit(fluxecho)),
   loop.create_task(flux.asyncio.submit(fluxsleep)),
]

asyncio.set_event_loop(loop)
results = loop.run_until_complete(asyncio.gather(*tasks))
# [JobID(456004999315456), JobID(456004999315457)]
