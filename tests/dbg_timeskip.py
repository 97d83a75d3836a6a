import uuid
import pytest
from tests.lifecycle_env import lifecycle_env

async def test_dbg(tmp_path, pg_url):
    async with lifecycle_env(tmp_path, pg_url) as lc:
        path = "/a"
        lc.receiver.scripts[path] = [(500, {})] * 2 + [(200, {})]
        task_id, _ = await lc.create(path=path)
        print("T0", await lc.env.get_current_time())
        import asyncio
        while (await lc.task(task_id)).status != "succeeded":
            await asyncio.sleep(0.1)
        print("after task", await lc.env.get_current_time())
        print(await lc.result(f"{task_id}-webhook-succeeded"))
        print("after child", await lc.env.get_current_time())
        for wid in (task_id, f"{task_id}-webhook-succeeded", f"{task_id}-retention"):
            d = await (await lc.handle(wid)).describe()
            raw = d.raw_description
            print(wid, d.status, [ (p.activity_type.name, p.state) for p in raw.pending_activities], len(raw.pending_children))
        await (await lc.handle(f"{task_id}-retention")).signal("delete_assets")
        print("retention1", await lc.result(f"{task_id}-retention"))
        path = "/b"
        lc.receiver.scripts[path] = [(500, {})] * 2 + [(200, {})]
        task_id, _ = await lc.create(path=path)
        import asyncio
        while (await lc.task(task_id)).status != "succeeded":
            await asyncio.sleep(0.1)
        print("after task2", await lc.env.get_current_time())
        for wid in (task_id, f"{task_id}-webhook-succeeded", f"{task_id}-retention"):
            d = await (await lc.handle(wid)).describe()
            raw = d.raw_description
            print(wid, d.status, [ (p.activity_type.name, p.state) for p in raw.pending_activities], len(raw.pending_children))
        print(await lc.result(f"{task_id}-webhook-succeeded"))
        print("after child2", await lc.env.get_current_time())
