"""Workflow and activity names: the contract between the API, workflows and workers.

Workflows refer to activities by these names so their sandbox never imports activity code
(and with it the DB driver or torch).
"""

RESERVE_CREDITS = "reserve_credits"
CAPTURE_CREDITS = "capture_credits"
RELEASE_CREDITS = "release_credits"
MARK_RUNNING = "mark_running"
MARK_SUCCEEDED = "mark_succeeded"
MARK_FAILED = "mark_failed"
RENDER_VIDEO = "render_video"
UPLOAD_OUTPUTS = "upload_outputs"
VIDEO_TASK_WORKFLOW = "VideoTask"
