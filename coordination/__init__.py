"""relaygraph.coordination: pure coordination logic — no LangGraph inside.

Consensus (issue 12): ``ballots`` (typed ballots, evidence checks, digests), ``voting``
(majority, qualified, unanimous, weighted; reputation; plurality fallback), ``bft`` (n−f
agreement rounds with suspects), ``pbft`` (three-phase PBFT with view changes), ``raft``
(leader election and log replication), ``network`` (transport interface, seeded simulated
network, fault behaviours), ``crypto`` (message signatures).
"""
