"""Agents: one policy over a whole multi-step run of a model and its tools.

``fp.Agent(policy, model=step, tools=[...])`` guards a hand-written agent loop: the model step and the
tools are wrapped, every tool failure, bad argument, planted instruction, risky call, loop and spent
budget is a failure state the policy's rules handle, the run ends in one of the five outcomes with one
trace, and each completed step is checkpointed so a run survives a crash or waits for an approval.
"""

from __future__ import annotations

from failpath.agent.pydanticai import GuardedPydanticAgent, guard_pydantic_ai
from failpath.agent.actions import Approve, Block, FeedBack, Reject, RequireApproval, Withhold
from failpath.agent.resume import resume
from failpath.agent.runner import Agent, RunBusy
from failpath.agent.states import (
    InvalidToolArgs,
    LoopDetected,
    RiskyToolCall,
    ToolError,
    ToolOutcomeUnknown,
    ToolOutputInjection,
)
from failpath.agent.tools import ModelTurn, Tool, ToolCall, tool

__all__ = [
    "Agent",
    "RunBusy",
    "resume",
    "Tool",
    "tool",
    "ToolCall",
    "ModelTurn",
    "ToolError",
    "InvalidToolArgs",
    "ToolOutputInjection",
    "RiskyToolCall",
    "LoopDetected",
    "ToolOutcomeUnknown",
    "FeedBack",
    "Block",
    "Withhold",
    "RequireApproval",
    "Approve",
    "Reject",
    "guard_pydantic_ai",
    "GuardedPydanticAgent",
]
