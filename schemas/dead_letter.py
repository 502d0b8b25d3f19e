"""What goes on revenue.dlq.v1: a message the pipeline could not use, with the reason."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    reason: str = Field(description="Why the message could not be used, for the operator.")
    topic: str = Field(description="Topic the message came from.")
    stage: str = Field(description="Which service refused it (processor, sink-postgres, ...).")
    failed_at: datetime
    payload: bytes = Field(description="The message bytes exactly as consumed, for replay after a fix.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
