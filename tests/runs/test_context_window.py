"""History is trimmed to the model's window, oldest first, keeping the system prompt."""

from app.llm.context import estimate_tokens, trim_to_window


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "Be brief."}]
    for turn in range(turns):
        messages.append({"role": "user", "content": f"question {turn} " + "x" * 400})
        messages.append({"role": "assistant", "content": f"answer {turn} " + "y" * 400})
    return messages


def test_a_conversation_that_fits_is_untouched() -> None:
    messages = conversation(3)
    assert trim_to_window(messages, 10_000) == messages


def test_the_oldest_messages_go_first_and_the_system_prompt_stays() -> None:
    messages = conversation(10)
    budget = 800
    trimmed = trim_to_window(messages, budget)
    assert trimmed[0] == {"role": "system", "content": "Be brief."}
    assert trimmed[-1] == messages[-1]
    assert sum(estimate_tokens(message) for message in trimmed) <= budget
    kept = trimmed[1:]
    assert kept == messages[len(messages) - len(kept) :]  # a suffix: only the oldest dropped
    assert len(kept) < len(messages) - 1


def test_the_newest_message_is_kept_even_if_it_alone_is_too_long() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "z" * 10_000}]
    assert trim_to_window(messages, 10) == messages
