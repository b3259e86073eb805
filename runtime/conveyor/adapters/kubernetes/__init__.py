"""Kubernetes adapters: `LeaseRoleScheduler` holds each role through a `coordination.k8s.io/v1` Lease named after
it, so one process in the cluster at a time acts as each role, and a crashed holder's role passes to a waiting
process within the lease duration. A role can be fenced by its group (`LeaseRoleScheduler.fence`): a step's shard
of one shard count is held only while no shard of the step with another count is."""

from conveyor.adapters.kubernetes._leases import LeaseRoleScheduler

__all__ = ["LeaseRoleScheduler"]
