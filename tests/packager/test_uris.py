import pytest

from packager.errors import InvalidUri, PackagerError
from packager.uris import UriBuilder
from tests.packager.factories import video

V720 = video("v720")
CDN = "https://cdn.example/stream/t1/v1/"


@pytest.mark.parametrize(
    ("builder", "method", "expected"),
    [
        pytest.param(UriBuilder(query="token=abc"), lambda u: u.master(), "master.m3u8?token=abc", id="rel-master"),
        pytest.param(UriBuilder(query="token=abc"), lambda u: u.mpd(), "manifest.mpd?token=abc", id="rel-mpd"),
        pytest.param(
            UriBuilder(query="token=abc"),
            lambda u: u.media_playlist("v720"),
            "v720/index.m3u8?token=abc",
            id="rel-media-playlist",
        ),
        pytest.param(
            UriBuilder(query="token=abc"), lambda u: u.init(V720), "init.mp4?token=abc", id="rel-init-beside-playlist"
        ),
        pytest.param(
            UriBuilder(query="token=abc"),
            lambda u: u.segment(V720, 7),
            "7.m4s?token=abc",
            id="rel-segment-beside-playlist",
        ),
        pytest.param(
            UriBuilder(query="token=abc"),
            lambda u: u.dash_init_template(),
            "$RepresentationID$/init.mp4?token=abc",
            id="rel-dash-init",
        ),
        pytest.param(
            UriBuilder(query="token=abc"),
            lambda u: u.dash_media_template(),
            "$RepresentationID$/$Number$.m4s?token=abc",
            id="rel-dash-media",
        ),
        pytest.param(
            UriBuilder(CDN, "token=abc"), lambda u: u.master(), CDN + "master.m3u8?token=abc", id="abs-master"
        ),
        pytest.param(
            UriBuilder(CDN, "token=abc"),
            lambda u: u.media_playlist("a0"),
            CDN + "a0/index.m3u8?token=abc",
            id="abs-media-playlist",
        ),
        pytest.param(
            UriBuilder(CDN, "token=abc"), lambda u: u.init(V720), CDN + "v720/init.mp4?token=abc", id="abs-init"
        ),
        pytest.param(
            UriBuilder(CDN, "token=abc"), lambda u: u.segment(V720, 3), CDN + "v720/3.m4s?token=abc", id="abs-segment"
        ),
        pytest.param(
            UriBuilder(CDN, "token=abc"),
            lambda u: u.dash_media_template(),
            CDN + "$RepresentationID$/$Number$.m4s?token=abc",
            id="abs-dash-media",
        ),
        pytest.param(
            UriBuilder("/stream/t1/v1", "token=abc"),
            lambda u: u.init(V720),
            "/stream/t1/v1/v720/init.mp4?token=abc",
            id="root-relative-gets-slash",
        ),
        pytest.param(
            UriBuilder(query="?token=abc"), lambda u: u.mpd(), "manifest.mpd?token=abc", id="leading-question-mark"
        ),
        pytest.param(UriBuilder(), lambda u: u.segment(V720, 1), "1.m4s", id="no-query-no-question-mark"),
        pytest.param(
            UriBuilder(query="token=a-b_c&exp=1"),
            lambda u: u.mpd(),
            "manifest.mpd?token=a-b_c&exp=1",
            id="multi-param-query",
        ),
    ],
)
def test_uris(builder, method, expected):
    assert method(builder) == expected


@pytest.mark.parametrize(
    ("base", "query"),
    [
        pytest.param("", "token=a$b", id="dollar-breaks-dash-template"),
        pytest.param("", 'token="x', id="quote-breaks-hls-quoted-string"),
        pytest.param("", "token=a\nb", id="newline-breaks-playlist-line"),
        pytest.param("", "token=a b", id="space"),
        pytest.param("", "token=a#b", id="fragment"),
        pytest.param("https://cdn/$x/", "token=a", id="dollar-in-base"),
        pytest.param("https://cdn/\r/", "token=a", id="cr-in-base"),
    ],
)
def test_rejects_characters_that_break_playlists(base, query):
    with pytest.raises(InvalidUri) as err:
        UriBuilder(base, query)
    assert isinstance(err.value, PackagerError) and err.value.code == "invalid_uri"


def test_is_frozen() -> None:
    u = UriBuilder(query="token=abc")
    with pytest.raises(AttributeError):
        u.query = "token=other"  # type: ignore[misc]  # assigning to the frozen field is what is tested
