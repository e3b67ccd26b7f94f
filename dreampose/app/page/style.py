"""The page's CSS: the step boxes, status lines, banners and empty output boxes."""

CSS = """
.step { border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
        padding: var(--spacing-lg); background: var(--background-fill-secondary); }
.step h3 { margin: 0 0 var(--spacing-sm) 0; }
.status { min-height: 3.4em; padding: var(--spacing-sm) var(--spacing-md);
          border-radius: var(--radius-md); background: var(--background-fill-primary); }
.status p { margin: 0; }
@media (max-width: 640px) { .status { min-height: 5em; } }
#tiny-banner, #setup-status { border: 1px solid var(--color-accent); border-radius: var(--radius-lg);
        padding: var(--spacing-md) var(--spacing-lg); background: var(--background-fill-secondary); }
.note { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
.output-box { border-style: solid !important; }
.output-box:has(> .empty) { height: auto !important; }
.output-box > .empty { min-height: 3.5em !important; height: 3.5em !important; }
.output-box > .empty .icon { height: 1.6em; }
#grid-image .image-frame { padding-top: 2.2em; }
#grid-image .image-frame img, #preview-image .image-frame img { max-width: 100%; object-fit: contain; }
"""
