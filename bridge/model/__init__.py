"""The MAPI vocabulary: property types and tags, named properties, value encoding."""
