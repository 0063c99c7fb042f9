import asyncpg


async def count_jobs(connection: asyncpg.Connection) -> list[tuple[str, str, int]]:
    """(queue, status, jobs) for every pair that has jobs in procrastinate's table."""
    rows = await connection.fetch(
        "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
        "GROUP BY queue_name, status ORDER BY queue_name, status"
    )
    return [(row[0], row[1], row[2]) for row in rows]
