"""The page at / in headless Chromium: sign in, drop an image, read the label, compare with the API's."""

import base64

import httpx

from serve_support import chromium, free_port, server_process, write_image_files

KEY = "page-test-key"


def test_the_page_classifies_dropped_and_chosen_images_as_the_api_does(runs, tmp_path):
    images = write_image_files(tmp_path / "images")
    keys = tmp_path / "keys"
    keys.write_text(KEY + "\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process([runs["hog+color+softmax"], "--api-key-file", keys], port), chromium() as browser:
        api = [httpx.post(f"{base}/v1/models/hog+color+softmax/predict", content=path.read_bytes(),
                          headers={"Authorization": f"Bearer {KEY}", "Content-Type": "image/png"}).json()
               for path in images[:2]]
        page = browser.new_page()
        page.goto(base)
        page.fill("input[name=key]", KEY)
        page.click("button[type=submit]")
        page.wait_for_selector("#models tbody tr")
        row = page.inner_text("#models tbody tr")
        assert "hog+color+softmax" in row and "cat" in row

        page.set_input_files("#files", str(images[0]))
        page.wait_for_selector(".result .label")
        first = api[0]["predictions"][0]
        assert page.inner_text(".result .label") == first["label"]
        bars = page.query_selector_all(".result .bar")
        assert len(bars) == len(first["probabilities"])
        assert bars[0].inner_text().split() == [first["label"], f"{max(first['probabilities'].values()):.4f}"]

        encoded = base64.b64encode(images[1].read_bytes()).decode()
        page.evaluate("""([name, encoded]) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            document.getElementById("results").replaceChildren();
            const drop = new DragEvent("drop", {dataTransfer: transfer, bubbles: true});
            document.getElementById("drop").dispatchEvent(drop);
        }""", [images[1].name, encoded])
        page.wait_for_selector(".result .label")
        assert page.inner_text(".result .label") == api[1]["predictions"][0]["label"]
        assert page.inner_text(".result div") == images[1].name
        assert page.get_attribute("a[href='/docs']", "href") == "/docs"
