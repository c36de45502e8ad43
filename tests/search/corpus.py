"""Generated documents on distinct topics, paraphrased queries for them, and how to store them.

Each query shares word stems with its document (as a paraphrase does) but not all its words,
so full-text search alone (every word must match) does not find it: only the vector half can.
Three invoices have look-alike numbers, which blur together as vectors: only exact words tell
them apart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pipeline.jobs import Document, DocumentStatus, DonePage, JobStore


@dataclass(frozen=True, slots=True)
class Topic:
    """A document's file name, page texts, and a paraphrased query that should find it."""

    filename: str
    pages: tuple[str, ...]
    query: str


TOPICS = (
    Topic("volcanoes.pdf", (
        ("Volcanic eruptions\n\nDuring an eruption a volcano forces molten magma, ash clouds and sulphur "
        "gases up through fissures in the crust. Lava flows can bury whole villages."),
        "Volcanologists monitor craters, lava domes and pyroclastic flows to warn people nearby.",
    ), "what comes out when volcanoes erupt"),
    Topic("photosynthesis.pdf", (
        ("Photosynthesis\n\nGreen plants capture sunlight with chlorophyll in their leaves and convert "
        "carbon dioxide and water into glucose, releasing oxygen into the air."),
    ), "how plants turn sunlight into glucose"),
    Topic("sourdough.pdf", (
        ("Sourdough baking\n\nA sourdough starter ferments flour and water with wild yeast and lactic "
        "bacteria. The dough rises slowly overnight and is baked in a very hot oven for a crisp crust."),
    ), "baking bread from a fermented starter"),
    Topic("chess.pdf", (
        ("Chess openings\n\nThe Sicilian Defence answers e4 with c5. Grandmasters study openings, "
        "castling, gambits and pawn structures for years before tournaments."),
    ), "openings grandmasters play in chess tournaments"),
    Topic("marathon.pdf", (
        ("Marathon training\n\nRunners preparing for a marathon build their weekly mileage, add one long "
        "run each weekend and taper in the final weeks before race day."),
    ), "preparing for a long marathon race as a runner"),
    Topic("honeybees.pdf", (
        ("Honeybee colonies\n\nHoneybees pollinate crops and wild flowers. The queen lays eggs while "
        "worker bees forage for nectar and pollen and build wax combs in the hive."),
    ), "bees pollinating flowers in their hives"),
    Topic("quantum.pdf", (
        ("Quantum computing\n\nQuantum computers store information in qubits held in superposition; "
        "entanglement links qubits, and error correction protects fragile quantum states."),
    ), "computers built from entangled qubits"),
    Topic("coffee.pdf", (
        ("Coffee roasting\n\nGreen coffee beans are roasted until they crack; the roast level shapes "
        "acidity and bitterness. Espresso extraction forces hot water through finely ground coffee."),
    ), "roasting coffee beans for espresso"),
    Topic("rome.pdf", (
        ("The Roman Empire\n\nUnder Augustus the Roman Empire expanded across the Mediterranean; legions "
        "built roads, forts and aqueducts throughout the provinces."),
    ), "emperors of ancient Rome and their legions"),
    Topic("glaciers.pdf", (
        ("Glacier retreat\n\nMountain glaciers retreat as global temperatures rise. Their meltwater "
        "raises sea levels and changes the rivers that depend on them."),
    ), "melting glaciers as temperatures rise globally"),
    Topic("vaccines.pdf", (
        ("Vaccination\n\nVaccines train the immune system: antibodies learn to recognise antigens of a "
        "pathogen, so a later infection is fought off quickly."),
    ), "how vaccinations train immunity against pathogens"),
    Topic("sailing.pdf", (
        ("Sailing upwind\n\nSailors navigate by compass and chart; a yacht cannot sail straight into the "
        "wind, so it tacks, zigzagging across it with the sails trimmed tight."),
    ), "navigating a sailing yacht against the wind"),
    Topic("jazz.pdf", (
        ("Jazz improvisation\n\nJazz musicians improvise over chord changes; saxophone and trumpet "
        "solos trade phrases over a swinging rhythm section."),
    ), "improvising solos on saxophones in jazz"),
    Topic("mortgage.pdf", (
        ("Mortgages\n\nA mortgage loan is repaid in monthly instalments of principal and interest, "
        "usually over twenty-five or thirty years; the house secures the loan."),
    ), "repaying a mortgage loan with monthly interest"),
    Topic("tomatoes.pdf", (
        ("Growing tomatoes\n\nTomato seedlings need full sunlight, stakes and regular watering. Gardeners "
        "pinch out side shoots so the plants put their energy into fruit."),
    ), "gardeners growing tomato plants at home"),
    Topic("earthquakes.pdf", (
        ("Earthquakes\n\nEarthquakes happen when tectonic plates slip along faults. Seismographs record "
        "the shaking and seismologists compute the magnitude."),
    ), "seismographs measuring tectonic earthquakes"),
    Topic("python.pdf", (
        ("Programming in Python\n\nPython programs are built from functions, lists and dictionaries; the "
        "interpreter runs scripts line by line and pip installs packages."),
    ), "writing python scripts with functions"),
    Topic("bicycle.pdf", (
        ("Bicycle repair\n\nTo repair a puncture, lever the tyre off the rim, find the hole in the inner "
        "tube, patch it, refit the tyre and inflate it."),
    ), "patching a punctured bicycle tube"),
    Topic("blackholes.pdf", (
        ("Black holes\n\nWhen a massive star collapses it can form a black hole whose gravity bends light; "
        "nothing that crosses the event horizon escapes."),
    ), "collapsed stars whose gravity swallows light"),
    Topic("wine.pdf", (
        ("Winemaking\n\nGrapes are harvested, crushed and fermented; vintners age red wine in oak barrels "
        "before bottling."),
    ), "fermenting harvested grapes into wines"),
    Topic("knitting.pdf", (
        ("Knitting\n\nWith two needles and wool yarn, knit and purl stitches make a scarf row by row; "
        "casting on starts it and casting off finishes it."),
    ), "knitting a wool scarf with needles by hand"),
    Topic("invoice-nordwind.pdf", (
        ("INVOICE\n\nInvoice number INV-2024-00731\nNordwind Logistics GmbH, Hafenstrasse 12, Hamburg\n"
        "Freight services March 2024. Total 1,250.00 EUR, due 2024-04-30."),
    ), ""),
    Topic("invoice-decoy-1.pdf", (
        ("INVOICE\n\nInvoice number INV-2024-00713\nNordwind Logistics GmbH, Hafenstrasse 12, Hamburg\n"
        "Freight services February 2024. Total 980.00 EUR, due 2024-03-31."),
    ), ""),
    Topic("invoice-decoy-2.pdf", (
        ("INVOICE\n\nInvoice number INV-2024-07031\nNordwind Logistics GmbH, Hafenstrasse 12, Hamburg\n"
        "Freight services January 2024. Total 1,105.00 EUR, due 2024-02-29."),
    ), ""),
)  # fmt: skip
INVOICE_NUMBER = "INV-2024-00731"
INVOICE_FILE = "invoice-nordwind.pdf"


async def add_text_document(
    store: JobStore, filename: str, pages: tuple[str, ...] | list[str], *, status: DocumentStatus = DocumentStatus.COMPLETED
) -> Document:
    """A document whose pages are done with these texts, closed as ``status`` (through the job store)."""
    doc_id = uuid.uuid4()
    await store.create_document(document_id=doc_id, source_key=f"documents/{doc_id}/source.pdf", filename=filename, kind="pdf")
    await store.start_pages(doc_id, kind="pdf", page_count=len(pages), engine="test")
    done = [DonePage(n, text, 1.0, {"text": text}, 1) for n, text in enumerate(pages, 1)]
    outcome = await store.finish_pages_done(doc_id, done)
    assert outcome.closed
    assert await store.finish_document(doc_id, status, result_key=None, error=None)
    return await store.get_document(doc_id)
