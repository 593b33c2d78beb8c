"""Watch semantics: resume from a resourceVersion, 410, timeouts, bookmarks, selectors, cuts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kubernetes
import requests

from devcluster.testing import Cluster, wait_for


class Stream:
    """Watch events collected by a background reader, so tests can poll them with a deadline."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.events: list[dict[str, Any]] = []
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line:
                    self.events.append(json.loads(line))
        except (requests.RequestException, ValueError, AttributeError):
            pass  # closed by the test (urllib3 raises AttributeError on a closed stream)
        finally:
            self.ended.set()

    def seen(self) -> list[tuple[str, str]]:
        return [(e["type"], e["object"]["metadata"].get("name", "")) for e in list(self.events)]


@contextmanager
def watch(cluster: Cluster, path: str, **params: str) -> Iterator[Stream]:
    cluster.emulator  # noqa: B018  (raw HTTP: skips on a real cluster)
    response = requests.get(
        cluster.url + path, params={"watch": "true", **params}, stream=True, timeout=30
    )
    assert response.status_code == 200
    stream = Stream(response)
    try:
        yield stream
    finally:
        # Ending the stream server-side lets the reader thread finish; closing a response
        # that another thread is reading would block until the read timeout instead.
        cluster.cut_watches()
        stream.ended.wait(10)
        response.close()


def configmaps(cluster: Cluster) -> str:
    return f"/api/v1/namespaces/{cluster.namespace}/configmaps"


def create(cluster: Cluster, name: str, **labels: str) -> Any:
    body = {"metadata": {"name": name, "labels": labels}}
    return kubernetes.client.CoreV1Api().create_namespaced_config_map(cluster.namespace, body)


def test_watch_resumes_from_a_resource_version_without_replaying_older_events(
    cluster: Cluster,
) -> None:
    create(cluster, "before")
    listed = kubernetes.client.CoreV1Api().list_namespaced_config_map(cluster.namespace)
    since = listed.metadata.resource_version
    create(cluster, "between")  # after the list, before the watch: must not be lost
    with watch(cluster, configmaps(cluster), resourceVersion=since) as stream:
        wait_for(lambda: ("ADDED", "between") in stream.seen(), message="the event after the list")
        create(cluster, "after")
        wait_for(lambda: ("ADDED", "after") in stream.seen(), message="a live event")
        assert ("ADDED", "before") not in stream.seen()


def test_watch_without_a_resource_version_starts_with_the_current_objects(cluster: Cluster) -> None:
    create(cluster, "old")
    with watch(cluster, configmaps(cluster)) as stream:
        wait_for(lambda: ("ADDED", "old") in stream.seen(), message="the synthetic ADDED")


def test_watch_from_a_compacted_resource_version_gets_410(cluster: Cluster) -> None:
    old = create(cluster, "x").metadata.resource_version
    create(cluster, "y")
    emu = cluster.emulator
    cluster.call(emu.compact)  # drops the event of "y", which a resume from "x" would need
    with watch(cluster, configmaps(cluster), resourceVersion=old) as stream:
        assert stream.ended.wait(10)
    assert [e["type"] for e in stream.events] == ["ERROR"]
    assert stream.events[0]["object"]["code"] == 410


def test_watch_honours_timeout_seconds(cluster: Cluster) -> None:
    started = time.monotonic()
    with watch(cluster, configmaps(cluster), timeoutSeconds="1") as stream:
        assert stream.ended.wait(10), "the server must end the stream after timeoutSeconds"
    assert time.monotonic() - started >= 0.9


def test_watch_sends_bookmarks_when_asked(cluster: Cluster) -> None:
    with watch(cluster, configmaps(cluster), allowWatchBookmarks="true") as stream:
        wait_for(lambda: any(e["type"] == "BOOKMARK" for e in stream.events), message="a BOOKMARK")
        bookmark = next(e for e in stream.events if e["type"] == "BOOKMARK")
        assert int(bookmark["object"]["metadata"]["resourceVersion"]) > 0
    with watch(cluster, configmaps(cluster), timeoutSeconds="1") as plain:
        assert plain.ended.wait(10)
    assert not any(e["type"] == "BOOKMARK" for e in plain.events)


def test_initial_events_end_with_an_annotated_bookmark(cluster: Cluster) -> None:
    create(cluster, "first")
    params = {
        "sendInitialEvents": "true",
        "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan",
    }
    with watch(cluster, configmaps(cluster), **params) as stream:
        wait_for(lambda: any(e["type"] == "BOOKMARK" for e in stream.events), message="the end")
        bookmark = next(e for e in stream.events if e["type"] == "BOOKMARK")
        annotations = bookmark["object"]["metadata"]["annotations"]
        assert annotations == {"k8s.io/initial-events-end": "true"}
        assert ("ADDED", "first") in stream.seen()


def test_watch_selectors_filter_and_report_objects_leaving_the_selection(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    ns = cluster.namespace
    with watch(cluster, configmaps(cluster), labelSelector="app=x", resourceVersion="1") as stream:
        create(cluster, "in", app="x")
        create(cluster, "out", app="y")
        core.patch_namespaced_config_map("in", ns, {"metadata": {"labels": {"app": "z"}}})
        core.patch_namespaced_config_map("out", ns, {"metadata": {"labels": {"app": "x"}}})
        wait_for(lambda: len(stream.events) >= 3, message="three events")
        assert stream.seen() == [("ADDED", "in"), ("DELETED", "in"), ("ADDED", "out")]
    with watch(cluster, configmaps(cluster), fieldSelector="metadata.name=in") as named:
        wait_for(lambda: named.seen() == [("ADDED", "in")], message="only 'in'")


def test_cut_watches_ends_every_live_stream(cluster: Cluster) -> None:
    with watch(cluster, configmaps(cluster)) as one, watch(cluster, "/api/v1/secrets") as two:
        wait_for(
            lambda: cluster.call(lambda: sum(map(len, cluster.emulator._watchers.values()))) == 2
        )
        assert cluster.cut_watches() == 2
        assert one.ended.wait(10)
        assert two.ended.wait(10)


def test_events_beyond_the_window_are_gone(tmp_path: Any) -> None:
    from devcluster.testing import cluster as open_cluster

    with open_cluster(tmp_path, environ={}, event_window=5) as small:
        session = requests.Session()
        path = f"/api/v1/namespaces/{small.namespace}/configmaps"
        first = session.post(small.url + path, json={"metadata": {"name": "c0"}}).json()
        for index in range(1, 10):
            session.post(small.url + path, json={"metadata": {"name": f"c{index}"}})
        since = first["metadata"]["resourceVersion"]
        with watch(small, path, resourceVersion=since) as stream:
            assert stream.ended.wait(10)
        assert stream.events[0]["object"]["code"] == 410


def test_after_close_watches_a_new_watch_ends_at_once(cluster: Cluster) -> None:
    """A server shutting down must not wait for a watch that arrived during the shutdown."""
    cluster.call(cluster.emulator.close_watches)
    with watch(cluster, configmaps(cluster), timeoutSeconds="60") as late:
        assert late.ended.wait(10)
