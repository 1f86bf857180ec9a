"""Celery tasks: thin wrappers that load ids and call services. JSON arguments only."""

from celery import chord, shared_task

from classification import services


@shared_task(name="classification.scan_run", acks_late=True)
def scan_run_task(scan_run_id: int) -> None:
    table_result_ids = services.scan_prepare(scan_run_id=scan_run_id)
    finish = scan_finish_task.si(scan_run_id)
    if not table_result_ids:
        finish.apply_async()
        return
    chord([scan_table_task.si(result_id) for result_id in table_result_ids])(finish)


@shared_task(name="classification.scan_table", acks_late=True)
def scan_table_task(table_result_id: int) -> None:
    services.scan_table_classify(table_result_id=table_result_id)


@shared_task(name="classification.scan_finish", acks_late=True)
def scan_finish_task(scan_run_id: int) -> None:
    services.scan_finish(scan_run_id=scan_run_id)
