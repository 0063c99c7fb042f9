"""`ajc encryption-key` and `ajc rotate-keys` (registered by app/cli.py)."""

import argparse
import secrets

from app.core.settings import Settings


def encryption_key(settings: Settings, args: argparse.Namespace) -> None:
    from app.secrets.keyring import new_key_text

    print(new_key_text(args.id or f"key-{secrets.token_hex(4)}"))


def rotate_keys(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio

    from tqdm import tqdm

    from app.core.console import bar_progress
    from app.core.db import create_engine, create_sessionmaker
    from app.core.embedded import open_database
    from app.core.logging import configure_logging
    from app.secrets import rotation
    from app.secrets.keyring import Keyring
    from app.secrets.service import Vault

    configure_logging(settings.log_level)
    vault = Vault(Keyring.from_settings(settings))

    async def run(owner_url: str) -> tuple[int, int]:
        engine = create_engine(owner_url, settings)
        sessionmaker = create_sessionmaker(engine)
        try:
            with tqdm(total=0, unit="key", desc="rewrapping data keys") as bar:
                rewrapped = await rotation.rewrap_data_keys(
                    sessionmaker, vault, args.batch_size, bar_progress(bar)
                )
            reencrypted = 0
            if args.reencrypt:
                with tqdm(total=0, unit="secret", desc="re-encrypting secrets") as bar:
                    reencrypted = await rotation.reencrypt_secrets(
                        sessionmaker, vault, args.batch_size, bar_progress(bar)
                    )
            return rewrapped, reencrypted
        finally:
            await engine.dispose()

    with open_database(settings) as urls:
        rewrapped, reencrypted = asyncio.run(run(urls.owner))
    print(
        f"{rewrapped} data keys rewrapped under master key {vault.keyring.current_id!r}"
        + (f", {reencrypted} secrets re-encrypted under new data keys" if args.reencrypt else "")
    )


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    key_parser = commands.add_parser(
        "encryption-key", help="print a new master key entry for ENCRYPTION_KEYS"
    )
    key_parser.add_argument("--id", help="the key's id (default: a random one)")
    key_parser.set_defaults(handler=encryption_key)

    rotate_parser = commands.add_parser(
        "rotate-keys",
        help="rewrap every data key under the first ENCRYPTION_KEYS key (owner role)",
    )
    rotate_parser.add_argument(
        "--reencrypt", action="store_true", help="also seal every secret under a new data key"
    )
    rotate_parser.add_argument("--batch-size", type=int, default=100)
    rotate_parser.set_defaults(handler=rotate_keys)
