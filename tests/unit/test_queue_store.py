"""QueueStore: the commit point and the areas on disk."""
import json
import os
import stat

import pytest

from gateway.model import Envelope, Plan
from gateway.queue.item import QueueItem
from gateway.queue.store import HOLD, QUEUE, SHUNT, QueueFull, QueueStore


def envelope(*rcpts):
    return Envelope("a@clinic.test", tuple(rcpts or ("b@partner.test",)), received_at=1.0)


async def test_put_writes_message_and_state_0600(tmp_path):
    store = QueueStore(tmp_path)
    env = envelope("b@partner.test", "c@partner.test")
    item = await store.put(env, b"Subject: x\r\n\r\nbody\r\n", Plan.relay_all(env.rcpt_tos))
    d = tmp_path / "queue" / item.id
    assert (d / "message.eml").read_bytes() == b"Subject: x\r\n\r\nbody\r\n"
    assert stat.S_IMODE(os.stat(d / "message.eml").st_mode) == 0o600
    state = json.loads((d / "state.json").read_bytes())
    assert state["schema_version"] == 1
    assert [r["address"] for r in state["recipients"]] == ["b@partner.test", "c@partner.test"]
    assert store.load(item.id).to_json() == item.to_json()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert store.size == 1


async def test_ids_are_random_128_bit(tmp_path):
    store = QueueStore(tmp_path)
    ids = {(await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))).id
           for _ in range(20)}
    assert len(ids) == 20 and all(len(i) == 32 for i in ids)


async def test_queue_full(tmp_path):
    store = QueueStore(tmp_path, max_items=2)
    for _ in range(2):
        await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    with pytest.raises(QueueFull):
        await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    assert len(store.ids()) == 2


async def test_move_and_error_text(tmp_path):
    store = QueueStore(tmp_path)
    item = await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    await store.move(item.id, QUEUE, SHUNT, "Traceback ...\n")
    assert store.find(item.id) == SHUNT
    assert (tmp_path / "shunt" / item.id / "error.txt").read_text() == "Traceback ...\n"
    assert store.size == 0
    await store.move(item.id, SHUNT, HOLD)
    assert store.find(item.id) == HOLD


async def test_staging_leftovers_are_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    (tmp_path / "tmp" / "half").mkdir()
    (tmp_path / "tmp" / "half" / "message.eml").write_bytes(b"partial")
    assert store.clean_tmp() == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_state_round_trip_rejects_unknown_schema():
    env = envelope()
    item = QueueItem.new("x", env, Plan.relay_all(env.rcpt_tos))
    data = item.to_json()
    assert QueueItem.from_json(json.loads(json.dumps(data))).to_json() == data
    data["schema_version"] = 99
    with pytest.raises(ValueError):
        QueueItem.from_json(data)


@pytest.mark.parametrize("shards", [1, 2, 3, 4])
def test_ids_shard_by_owner(shards):
    from gateway.queue.store import new_id, owner
    for shard in range(shards):
        for _ in range(50):
            item_id = new_id(shard, shards)
            assert len(item_id) == 32 and owner(item_id, shards) == shard


async def test_shards_see_only_their_own_items(tmp_path):
    a, b = QueueStore(tmp_path, shard=0, shards=2), QueueStore(tmp_path, shard=1, shards=2)
    for store in (a, a, b):
        await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    assert len(a.own_ids()) == 2 and len(b.own_ids()) == 1 and len(a.ids()) == 3
    assert QueueStore(tmp_path, shard=0, shards=2).size == 2
