package hearth

// Attachment is what the archive keeps of an uploaded photo (README,
// "Photos"). ID is the SHA-256 of the stored file in lower-case hex; the
// file itself lives under data_dir/attachments.
type Attachment struct {
	ID          string `json:"id"`
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	ThumbType   string `json:"thumb_type"` // image/jpeg, or image/png for a photo with transparency
	Uploader    string `json:"uploader"`   // the first to upload it
	Room        string `json:"room"`       // where it was uploaded first
	CreatedAt   int64  `json:"created_at"` // Unix milliseconds of the latest upload
}
