"""The automation agent: a LangGraph graph with a planner, a chat model, tools and a summary.

Every node appends entries to ``automation_trace``; a recorder watching the graph's stream
stores them. The agent itself knows nothing of the trace database.
"""

from .checkpoint import make_checkpointer
from .graph import AgentState, build_graph, user_input
from .models import ModelUnavailable, get_model, model_label
from .offline import OfflineChatModel
from .replay import Fork, ForkError, Replay, fork_from_trace, fork_thread, replay
from .tools import TOOLS

__all__ = [
    "TOOLS",
    "AgentState",
    "Fork",
    "ForkError",
    "ModelUnavailable",
    "OfflineChatModel",
    "Replay",
    "build_graph",
    "fork_from_trace",
    "fork_thread",
    "get_model",
    "make_checkpointer",
    "model_label",
    "replay",
    "user_input",
]
