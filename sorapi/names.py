"""Workflow and activity names: the contract between the API, workflows and workers.

Workflows refer to activities by these names so their sandbox never imports activity code
(and with it the DB driver or torch).
"""

RESERVE_CREDITS = "reserve_credits"
CAPTURE_CREDITS = "capture_credits"
RELEASE_CREDITS = "release_credits"
MARK_SUCCEEDED = "mark_succeeded"
MARK_FAILED = "mark_failed"
RENDER_VIDEO = "render_video"
UPLOAD_OUTPUTS = "upload_outputs"
VIDEO_TASK_WORKFLOW = "VideoTask"
ACQUIRE_SLOT = "acquire_slot"
REFRESH_CREDITS = "refresh_credits"
RELEASE_EXPIRED_HOLDS = "release_expired_holds"
CREDIT_REFRESH_WORKFLOW = "CreditRefresh"
CREDIT_REFRESH_SCHEDULE = "sorapi-credit-refresh"
DELIVER_WEBHOOK = "deliver_webhook"
EXPIRE_TASK = "expire_task"
DISCARD_OUTPUTS = "discard_outputs"
WEBHOOK_DELIVERY_WORKFLOW = "WebhookDelivery"
DELETE_ASSETS_SIGNAL = "delete_assets"
TASK_RETENTION_WORKFLOW = "TaskRetention"
START_WEBHOOK_DELIVERY = "start_webhook_delivery"
START_RETENTION = "start_retention"
