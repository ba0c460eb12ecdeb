"""The /fuse endpoint through gradio_client against the app on 127.0.0.1."""

import concurrent.futures

from gradio_client import Client, handle_file


def test_fuse_endpoint_streams_members_transcript_and_verdict(app, red_png):
    demo, url = app
    client = Client(url, verbose=False)
    job = client.submit("What colour is this?", [handle_file(str(red_png))], "tiny-offline,tiny-offline:skeptic",
                        "tiny-offline", "debate", 2, 24, api_name="/fuse")
    outs = list(job)
    assert outs[-1]["event"] == "done", outs[-1]
    assert any(o["event"] == "tokens" for o in outs[:-1])  # streamed before the end
    result = outs[-1]["result"]
    assert len(result["rounds"]) in (1, 2) and all(len(r) == 2 for r in result["rounds"])
    assert all(o["ok"] and o["completion_tokens"] > 0 for o in result["rounds"][0])
    assert result["prompt"]["images"][0]["width"] == 48
    assert result["verdict"]["mode"] == "debate" and result["final_answer"]
    assert "Round 1" in outs[-1]["transcript_html"]
    assert demo.store.load(result["run_id"]).run_id == result["run_id"]  # kept in the run store
    # the environment comes through gradio_client intact (a "path" key would be taken for a file to download)
    assert result["environment"]["models"][0]["checkpoint"] and result["environment"]["packages"]["gradio"]


def test_fuse_endpoint_reports_bad_input_and_keeps_working(app):
    _, url = app
    client = Client(url, verbose=False)
    out = client.predict("", [], "tiny-offline", "tiny-offline", "best-of", 1, 8, api_name="/fuse")
    assert out["event"] == "error" and "empty" in out["error"]
    out = client.predict("hi", [], "no-such-model", "tiny-offline", "best-of", 1, 8, api_name="/fuse")
    assert out["event"] == "error" and "Known presets" in out["error"]
    out = client.predict("hi", [], "tiny-offline", "", "vote", 1, 8, api_name="/fuse")
    assert out["event"] == "done"


def test_concurrent_sessions_all_complete(app, remote, server):
    _, url = app
    from workbench.specs import load_registry  # noqa: F401  (members by scheme need no registry entry)

    def one(i):
        client = Client(url, verbose=False)
        return client.predict(f"question {i}", [], "tiny-offline,tiny-offline:skeptic", "", "vote", 1, 8,
                              api_name="/fuse")

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(one, range(4)))
    assert [o["event"] for o in outs] == ["done"] * 4
    assert len({o["result"]["run_id"] for o in outs}) == 4
