"""Scaling and process counts in deploy/: KEDA's queue, one clock, resources, grace periods, probes."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import kubernetes_validate
from dramatiq import Message

from pipeline.settings import ExplicitSettings
from tests.deploy.deploy_files import (
    K8S_VERSION,
    OCR_MAIN_PROCESS_MIB,
    OCR_PROCESS_RSS_MIB,
    ROOT,
    by_kind,
    deployment_running,
    deployments,
    interpolate,
    load_compose,
    pagemill_services,
    pod_container,
    pod_env,
    procfile_argv,
    quantity,
    queue_key,
    service_env,
)

# --- queues and autoscaling --------------------------------------------------------------------


def test_keda_scales_the_ocr_worker_on_its_dramatiq_queue_list() -> None:
    (scaled,) = by_kind("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = deployments()[spec["scaleTargetRef"]["name"]]
    assert pod_container(target)["args"] == ["ocr"]
    settings = ExplicitSettings(**pod_env(pod_container(target)))
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values are strings"
    assert meta["listName"] == queue_key(settings.redis_namespace, settings.ocr_queue)
    assert settings.redis_url is not None
    url = urlsplit(settings.redis_url)
    assert meta["address"] == f"{url.hostname}:{url.port or 6379}", (
        "KEDA must watch the Redis the workers use"
    )
    assert meta["databaseIndex"] == (url.path.strip("/") or "0")
    assert int(meta["listLength"]) > 0 and int(meta.get("activationListLength", "0")) >= 0
    # Pages in progress are off the list: never scale to zero under running pages.
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


# ScaledObject fields (KEDA's ScaledObject specification; no schema of it ships offline).
KEDA_SPEC_FIELDS = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}  # fmt: skip
KEDA_TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
# The redis (list) scaler's metadata.
KEDA_REDIS_METADATA = {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "usernameFromEnv",
                       "passwordFromEnv", "listName", "listLength", "activationListLength", "enableTLS", "unsafeSsl",
                       "databaseIndex"}  # fmt: skip


def test_keda_scaled_object_names_only_fields_keda_knows() -> None:
    (scaled,) = by_kind("ScaledObject")
    spec = scaled["spec"]
    assert set(spec) <= KEDA_SPEC_FIELDS and {"scaleTargetRef", "triggers"} <= set(spec)
    assert set(spec["scaleTargetRef"]) <= {"apiVersion", "kind", "name", "envSourceContainerName"}
    for trigger in spec["triggers"]:
        assert set(trigger) <= KEDA_TRIGGER_FIELDS
        assert set(trigger["metadata"]) <= KEDA_REDIS_METADATA and {"listName", "listLength"} <= set(
            trigger["metadata"]
        )
    hpa_config = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
    assert set(hpa_config) <= {"name", "behavior"}
    # The behavior block is the HPA's own: validate it inside an HPA, against the Kubernetes schema.
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "check"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}, "maxReplicas": 1,
                    "behavior": hpa_config.get("behavior", {})}}  # fmt: skip
    kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)


def test_dramatiq_keeps_ready_and_delayed_messages_in_the_lists_named_so(redis_url: str) -> None:
    import redis

    from actors.broker import build_broker

    (config,) = by_kind("ConfigMap")
    namespace, queue = f"deploy-{uuid.uuid4().hex[:8]}", config["data"]["CELERY_OCR_QUEUE"]
    broker = build_broker(ExplicitSettings(redis_url=redis_url, redis_namespace=namespace))
    client = redis.Redis.from_url(redis_url)
    try:
        broker.declare_queue(queue)
        make = lambda: Message(queue_name=queue, actor_name="tasks.ocr_page", args=(), kwargs={}, options={})
        broker.enqueue(make())
        broker.enqueue(make())
        broker.enqueue(make(), delay=60_000)
        assert client.llen(queue_key(namespace, queue)) == 2
        assert client.llen(queue_key(namespace, queue) + ".DQ") == 1
    finally:
        broker.flush_all()
        broker.close()
        client.close()


def test_hpa_alternative_uses_the_queue_depth_metric_web_exports() -> None:
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    target = deployments()[hpa["spec"]["scaleTargetRef"]["name"]]
    assert pod_container(target)["args"] == ["ocr"]
    settings = ExplicitSettings(**pod_env(pod_container(target)))
    (metric,) = hpa["spec"]["metrics"]
    source = (ROOT / "web" / "metrics.py").read_text()
    name, labels = (
        metric["external"]["metric"]["name"],
        metric["external"]["metric"]["selector"]["matchLabels"],
    )
    assert f'"{name}"' in source and 'labels=["queue", "kind"]' in source, f"web/metrics.py exports no {name}"
    assert labels == {"queue": settings.ocr_queue, "kind": "ready"}


def test_exactly_one_clock_and_one_bridge_per_name() -> None:
    for process_type in ("clock", "bridge"):
        deployment = deployment_running(process_type)
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "a rolling update runs two at once"
        scaled = [
            o["spec"]["scaleTargetRef"]["name"]
            for o in by_kind("ScaledObject") + by_kind("HorizontalPodAutoscaler")
        ]
        assert deployment["metadata"]["name"] not in scaled
    clocks = [s for s in load_compose()["services"].values() if s.get("command") == ["clock"]]
    assert len(clocks) == 1 and clocks[0].get("deploy", {}).get("replicas", 1) == 1


def test_ocr_worker_resources_and_grace_period_follow_measured_figures_and_limits() -> None:
    deployment = deployment_running("ocr")
    container = pod_container(deployment)
    env = pod_env(container)
    settings = ExplicitSettings(**env)
    processes = int(procfile_argv("${PAGEMILL_OCR_PROCESSES:-2}", env)[0])
    threads = settings.ocr_threads or 1
    resources = container["resources"]
    assert quantity(resources["requests"]["cpu"]) == processes * threads, "processes x threads = cores"
    needed = (processes * OCR_PROCESS_RSS_MIB + OCR_MAIN_PROCESS_MIB) * 2**20
    assert quantity(resources["requests"]["memory"]) >= needed
    assert quantity(resources["limits"]["memory"]) >= quantity(resources["requests"]["memory"])
    # A running page finishes (or hits its time limit) before the pod is killed.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > settings.page_time_limit
    ocr = load_compose()["services"]["ocr"]
    page_limit = ExplicitSettings(**service_env(ocr)).page_time_limit
    assert int(ocr["stop_grace_period"].removesuffix("s")) > page_limit
    default = deployment_running("default")
    llm_timeout = ExplicitSettings(**pod_env(pod_container(default))).llm_timeout_s
    assert default["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > llm_timeout


def test_web_probes_and_service_point_at_real_routes_and_ports() -> None:
    from web.health import routes

    paths = {route.path for route in routes}
    container = pod_container(deployment_running("web"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    (port,) = container["ports"]
    assert int(pod_env(container)["PORT"]) == port["containerPort"]
    (service,) = by_kind("Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {port["name"]}
    for deployment in deployments().values():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == deployment_running("web")["spec"]["selector"]["matchLabels"]


def test_prometheus_scrapes_ports_the_processes_serve_metrics_on() -> None:
    scraped = {}
    for name, deployment in deployments().items():
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        container = pod_container(deployment)
        port = int(annotations["prometheus.io/port"])
        assert port in {p["containerPort"] for p in container.get("ports", [])}, name
        settings = ExplicitSettings(**pod_env(container))
        if container["args"] == ["web"]:
            assert int(pod_env(container)["PORT"]) == port and annotations["prometheus.io/path"] == "/metrics"
        else:  # dramatiq workers serve their own metrics only on PAGEMILL_WORKER_METRICS_PORT (0: off)
            assert settings.worker_metrics_port == port, name
        scraped[container["args"][0]] = port
    assert {"web", "ocr", "default"} <= set(scraped)


def test_compose_starts_pagemill_after_healthy_servers_a_bucket_and_migrations() -> None:
    compose = load_compose()
    services = compose["services"]
    redis_args = services["redis"]["command"]
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"]), "AOF on a volume"
    assert services["migrate"]["command"] == ["pagemill", "migrate"]
    bucket = service_env(services["web"])["S3_BUCKET"]
    assert interpolate(services["minio-bucket"]["environment"]["S3_BUCKET"]) == bucket
    assert "mc mb" in " ".join(services["minio-bucket"]["entrypoint"])
    for name, service in pagemill_services(compose).items():
        deps = service["depends_on"]
        for dep, condition in deps.items():
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep}'s health, which it never reports"
                )
        if name != "migrate":
            assert deps["migrate"] == {"condition": "service_completed_successfully"}, name
            assert deps["postgres"] == deps["redis"] == {"condition": "service_healthy"}, name
