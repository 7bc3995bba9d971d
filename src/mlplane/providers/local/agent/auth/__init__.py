"""Authentication (tokens -> principals) and authorization (IAM) of every call to the agent."""

from .gate import Caller, Gate, Unauthenticated, bearer
from .tokens import Issued, Token, TokenAuthority

__all__ = ["Caller", "Gate", "Issued", "Token", "TokenAuthority", "Unauthenticated", "bearer"]
