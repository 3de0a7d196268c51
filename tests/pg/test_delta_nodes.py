"""A delta upload resumed through the other node of two sharing one PostgreSQL index.

The planned tree and the staged chunks live in each node's own work folder (node-local:
two nodes never share half-written staging files), so a commit sent to a node that did
not see the plan is refused with 409 ("send the tree again (delta/plan)"); the client
plans on that node, uploads what it lacks and commits, and the file is whole on the
shared folder. Nothing is placed by the refused commit.
"""

from __future__ import annotations

import random

from caddytw.sync.chunks import build_tree, cut
from tests.pg.test_nodes import Node
from tests.sync_server.helpers import Api, sha
from tests.sync_server.test_delta_api import commit, frames, plan

BASE = random.Random(7).randbytes(1024 * 1024)


def test_a_resumed_delta_upload_through_the_other_node(nodes: tuple[Node, Node]) -> None:
    first, second = nodes
    one, two = Api(first.port), Api(second.port)
    assert one.upload("big.bin", BASE, If_None_Match="*").status == 201
    edited = BASE[:400_000] + b"inserted on a laptop" + BASE[400_000:]
    tree = build_tree(cut(edited))
    missing = plan(one, "big.bin", edited, tree)
    assert missing
    stored = one.call("POST", "delta/chunks", frames(edited, tree, missing))
    assert stored.status == 200
    # The load balancer sends the commit to node 2, which never saw the tree (trees and
    # staged chunks are node-local): refused, telling the client to plan again.
    refused = commit(two, "big.bin", edited, tree, If_Match=f'"{sha(BASE)}"')
    assert refused.status == 409 and "delta/plan" in refused.json()["error"], refused
    assert (first.root / "big.bin").read_bytes() == BASE  # nothing placed
    # Resume on node 2: plan there, send what it asks for, commit.
    wanted = plan(two, "big.bin", edited, tree)
    assert wanted and two.call("POST", "delta/chunks", frames(edited, tree, wanted)).status == 200
    done = commit(two, "big.bin", edited, tree, If_Match=f'"{sha(BASE)}"')
    assert done.status == 200 and done.json()["hash"] == sha(edited)
    assert (first.root / "big.bin").read_bytes() == edited
    assert one.listing()["big.bin"]["hash"] == sha(edited)
    one.close()
    two.close()
