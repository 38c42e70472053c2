"""The local REST API (`/api/v1`): MAPI-shaped JSON over aiohttp."""
