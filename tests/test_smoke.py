from tests.support.memory import memory_server


def test_static_response_placeholder():
    server = memory_server(
        [
            {
                "handle": [
                    {
                        "handler": "static_response",
                        "body": "{http.request.method} {http.request.host}",
                    }
                ]
            }
        ]
    )
    response = server.request("GET", "/x", host="example.com:8080")
    assert response.status == 200
    assert response.body == b"GET example.com"
    assert response.header("content-type") == "text/plain; charset=utf-8"


def test_no_route_is_empty_200():
    response = memory_server([]).request("GET", "/")
    assert response.status == 200
    assert response.body == b""
    assert response.header("content-type") is None
