"""HLS playlists and DASH MPDs rendered from the rendition model. Pure: no I/O."""
