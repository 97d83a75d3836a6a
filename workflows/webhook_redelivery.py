"""WebhookRedelivery: holds one of a task's redelivery slots while the redelivery it runs goes on.

The API starts it under a slot's workflow id (`<task>-redelivery-<n>`, n from 1 to
`SORAPI_WEBHOOK_REDELIVERIES_PER_TASK`), and Temporal runs at most one workflow per id: a task never
has more redeliveries in flight than slots, whatever races, and a slot is free the moment its
workflow closes, however it closes (delivered, gave up, terminated). Nothing is polled or stored.

The delivery itself is the unchanged `WebhookDelivery` workflow, run as this one's child under the
redelivery's own id, so each redelivery's attempts are logged under a fresh `delivery_id`.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import names
    from sorapi.contracts.messages import DeliveryReport, RedeliveryInput


@workflow.defn(name=names.WEBHOOK_REDELIVERY_WORKFLOW)
class WebhookRedeliveryWorkflow:
    @workflow.run
    async def run(self, arg: RedeliveryInput) -> DeliveryReport:
        return await workflow.execute_child_workflow(
            names.WEBHOOK_DELIVERY_WORKFLOW, arg.delivery, id=arg.delivery_id, result_type=DeliveryReport
        )
