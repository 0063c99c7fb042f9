"""`ajc rotate-keys`: the master key and the data keys rotate without downtime.

Rewrapping (always): every data key not wrapped by the current master key (the first of
ENCRYPTION_KEYS) is unwrapped with its own and wrapped again with the current one. A data key's
material does not change, so no secret is touched and a running service keeps working with
either wrapping. Once none is left, the old master key can leave ENCRYPTION_KEYS.

Re-encrypting (`--reencrypt`, when a data key may have leaked): every owner's current data key
is retired, and each secret is opened with its retired key and sealed again under a new
current one; retired keys that seal nothing are deleted at the end.

Both go in batches, each its own transaction (`FOR UPDATE SKIP LOCKED`): an interrupted run
keeps what it did, and running it again goes on from there (a second `--reencrypt` retires
the keys the first one made, which costs work, not correctness). As the owner role: it spans
every organization.
"""

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.secrets import repository
from app.secrets.service import Vault, data_key_context

Progress = Callable[[int, int], None]  # (done, total)


async def rewrap_data_keys(
    sessionmaker: async_sessionmaker[AsyncSession],
    vault: Vault,
    batch_size: int,
    progress: Progress,
) -> int:
    keyring = vault.keyring
    async with sessionmaker() as session:
        total = await repository.count_data_keys_not_under(session, keyring.current_id)
    done = 0
    while True:
        async with sessionmaker() as session, session.begin():
            batch = await repository.data_keys_not_under(session, keyring.current_id, batch_size)
            for data_key in batch:
                context = data_key_context(data_key.owner_organization_id, data_key.id)
                material = keyring.unwrap(data_key.master_key_id, data_key.wrapped, context)
                data_key.master_key_id, data_key.wrapped = keyring.wrap(material, context)
        if not batch:
            return done
        done += len(batch)
        progress(done, max(total, done))


async def reencrypt_secrets(
    sessionmaker: async_sessionmaker[AsyncSession],
    vault: Vault,
    batch_size: int,
    progress: Progress,
) -> int:
    async with sessionmaker() as session, session.begin():
        await repository.retire_current_data_keys(session)
    async with sessionmaker() as session:
        total = await repository.count_secrets_under_retired_keys(session)
    done = 0
    while True:
        async with sessionmaker() as session, session.begin():
            batch = await repository.secrets_under_retired_keys(session, batch_size)
            for secret in batch:
                value = await vault.reveal(
                    session, secret.owner_organization_id, secret.id, secret.purpose
                )
                await vault.reseal(session, secret, value)
        if not batch:
            break
        done += len(batch)
        progress(done, max(total, done))
    async with sessionmaker() as session, session.begin():
        await repository.delete_unused_retired_data_keys(session)
    return done
