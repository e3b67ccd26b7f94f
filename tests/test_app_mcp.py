"""The app's steps as MCP tools (``app.py --mcp``), listed and called through the MCP endpoint
of a real server on 127.0.0.1 with the MCP client library."""

from __future__ import annotations

import asyncio
import base64

import pytest

from tests.helpers.app import PHOTO, VIDEO, launch_tiny_app

pytest.importorskip("mcp")

STEPS = {"extract_poses", "finetune", "preview", "guidance_grid", "render"}


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory):
    demo, service = launch_tiny_app(tmp_path_factory.mktemp("sessions"), mcp_server=True)
    yield f"{demo.local_url}gradio_api/mcp/"
    demo.close()
    service.close()


def _data_url(path, kind: str) -> str:
    """A file as MCP clients send one: Gradio refuses to fetch http URLs of 127.0.0.1."""
    return f"data:{kind};base64," + base64.b64encode(open(path, "rb").read()).decode()


async def _session(url: str, work):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def test_each_step_is_a_tool_with_its_parameters_described(mcp_url):
    tools = {t.name: t for t in asyncio.run(_session(mcp_url, lambda s: s.list_tools())).tools}
    assert set(tools) >= STEPS, sorted(tools)
    assert {"cancel_poses", "cancel_render"} <= set(tools), sorted(tools)
    for name in STEPS:
        tool = tools[name]
        assert len(tool.description) > 40, (name, tool.description)
        for param, schema in tool.inputSchema["properties"].items():
            assert len(schema.get("description", "")) > 10, (name, param, schema)
    assert "image guidance" in tools["preview"].inputSchema["properties"]["s_i"]["description"]


def test_the_tools_run_a_preview_in_order(mcp_url):
    """extract_poses, then preview in the same MCP session: the second finds the first's poses."""

    async def work(session):
        poses = await session.call_tool(
            "extract_poses",
            {
                "photo": _data_url(PHOTO, "image/png"),
                "driving_video": _data_url(VIDEO, "video/mp4"),
                "align": True,
            },
        )
        frame = await session.call_tool(
            "preview",
            {"frame": 0, "s_i": 8, "s_p": 3, "steps": 2, "sampler": "ddim", "seed": 0, "fast": False},
        )
        return poses, frame

    poses, frame = asyncio.run(_session(mcp_url, work))
    assert not poses.isError, poses.content
    assert not frame.isError, frame.content
    assert any(c.type == "image" or "png" in str(c) for c in frame.content), frame.content
