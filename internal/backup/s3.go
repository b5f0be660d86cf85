package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3 limits and our memory budget.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	maxParts    = 10000
	// unknownSizePartSize is used when the caller has no size hint:
	// 10,000 parts of 16 MiB cover 156 GiB.
	unknownSizePartSize = 16 << 20
	// partBuffers bounds the memory of an upload: one part filling from
	// the reader while the others upload, at most this many parts in
	// memory.
	partBuffers = 3
)

// Timeouts of S3 calls; variables so a caller or a test can change them.
var (
	// S3CheckTimeout bounds OpenTarget's HeadBucket: an unreachable or
	// misconfigured endpoint fails within it, retries included.
	S3CheckTimeout = 10 * time.Second
	// S3PartTimeout bounds one part upload (plus one second per MiB of the
	// part), so a stalled connection cannot hang a backup.
	S3PartTimeout = time.Minute
)

// PartSize is the multipart part size for an object of about sizeHint
// bytes: the smallest whole MiB with which 10,000 parts (S3's limit) cover
// it, at least 5 MiB (S3's minimum). An upload holds at most three parts in
// memory, so a 500 GB snapshot takes 150 MB; pass the source's used_memory
// or the last backup's size as a hint, since an object that outgrows
// 10,000 parts fails.
func PartSize(sizeHint int64) int64 {
	if sizeHint <= 0 {
		return unknownSizePartSize
	}
	size := (sizeHint + maxParts - 1) / maxParts
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	return min(max(size, minPartSize), maxPartSize)
}

type s3Target struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
	// dataOpts apply to the requests that carry object data. Over TLS the
	// payload is sent unsigned (UNSIGNED-PAYLOAD): TLS already protects it,
	// and hashing every part with SHA-256 costs a core second per GB. Over
	// plain HTTP the signed SHA-256 is the only integrity check in transit.
	dataOpts []func(*s3.Options)
}

func openS3(ctx context.Context, u *url.URL, o options) (*s3Target, error) {
	t := &s3Target{bucket: u.Host, prefix: strings.TrimPrefix(u.Path, "/")}
	if t.bucket == "" {
		return nil, errors.New("s3 URL without a bucket: want s3://BUCKET/PREFIX")
	}
	if u.User != nil {
		return nil, errors.New("credentials do not belong in the URL: they come from the AWS chain (AWS_ACCESS_KEY_ID, ...)")
	}
	if t.prefix != "" && !strings.HasSuffix(t.prefix, "/") {
		t.prefix += "/"
	}
	endpoint, region := "", ""
	pathStyle := false
	for k, v := range u.Query() {
		var err error
		switch k {
		case "endpoint":
			endpoint = v[0]
			if e, perr := url.Parse(endpoint); perr != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				err = fmt.Errorf("endpoint %q is not an http(s) URL", endpoint)
			}
		case "region":
			region = v[0]
		case "pathStyle":
			if pathStyle, err = strconv.ParseBool(v[0]); err != nil {
				err = fmt.Errorf("pathStyle %q is not true or false", v[0])
			}
		default:
			err = fmt.Errorf("unknown parameter %q (want endpoint, region, pathStyle)", k)
		}
		if err != nil {
			return nil, err
		}
	}

	// Bounded dials and response waits; the body of a part may take long,
	// S3PartTimeout bounds that.
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = 10 * time.Second
			tr.ResponseHeaderTimeout = 2 * time.Minute
		})
	loadOpts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if region != "" {
		loadOpts = append(loadOpts, config.WithRegion(region))
	}
	if o.accessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.accessKeyID, o.secretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	t.client = s3.NewFromConfig(cfg, func(so *s3.Options) {
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
		}
		so.UsePathStyle = pathStyle
		// The SDK's default CRC32 checksums use aws-chunked trailers that
		// several S3-compatible servers mishandle; the RDB carries its own
		// CRC64, and signed requests carry the payload's SHA-256.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})

	if endpoint == "" || strings.HasPrefix(endpoint, "https:") {
		t.dataOpts = append(t.dataOpts, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	}

	hctx, cancel := context.WithTimeout(ctx, S3CheckTimeout)
	defer cancel()
	if _, err := t.client.HeadBucket(hctx, &s3.HeadBucketInput{Bucket: aws.String(t.bucket)}); err != nil {
		if errors.Is(hctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("check bucket %s: no answer within %s: %w", t.bucket, S3CheckTimeout, err)
		}
		return nil, fmt.Errorf("check bucket %s: %w", t.bucket, err)
	}
	return t, nil
}

func (t *s3Target) url(key string) string { return "s3://" + t.bucket + "/" + t.prefix + key }

// Put uploads r as one PutObject when it fits in a part, else as a
// multipart upload with at most partBuffers parts in memory. Nothing is
// created until r ends: the first part is read before the upload starts,
// and the upload is completed only after io.EOF; any error aborts it.
func (t *s3Target) Put(ctx context.Context, key string, r io.Reader, sizeHint int64) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	if err := t.put(ctx, t.prefix+key, ctxReader{ctx, r}, PartSize(sizeHint)); err != nil {
		return "", fmt.Errorf("put %s: %w", t.url(key), err)
	}
	return t.url(key), nil
}

func (t *s3Target) put(ctx context.Context, key string, r io.Reader, partSize int64) error {
	buf := make([]byte, partSize)
	n, err := fill(r, buf)
	if err == io.EOF {
		_, err := t.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(t.bucket), Key: aws.String(key),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
		}, t.dataOpts...)
		return err
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	out, err := t.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(t.bucket), Key: aws.String(key),
	})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	u := &upload{t: t, key: key, id: out.UploadId}
	if err := u.run(ctx, r, buf[:n], partSize); err != nil {
		return u.abort(ctx, err)
	}
	return nil
}

// fill reads until buf is full or r fails; unlike io.ReadFull it returns
// io.EOF itself, so a source error that wraps io.ErrUnexpectedEOF is never
// taken for the end of the data.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type upload struct {
	t   *s3Target
	key string
	id  *string

	mu    sync.Mutex
	parts []types.CompletedPart
	err   error
}

func (u *upload) run(ctx context.Context, r io.Reader, first []byte, partSize int64) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan []byte, partBuffers)
	allocated := 1
	var wg sync.WaitGroup
	defer wg.Wait()

	data, last := first, false
	for num := int32(1); ; num++ {
		if num > maxParts {
			cancel()
			return fmt.Errorf("object larger than %d parts of %d bytes: pass a larger size hint", maxParts, partSize)
		}
		wg.Add(1)
		go func(num int32, data []byte) {
			defer wg.Done()
			defer func() { free <- data[:cap(data)] }()
			if err := u.part(pctx, num, data); err != nil {
				u.fail(err)
				cancel()
			}
		}(num, data)
		if last {
			break
		}
		var buf []byte
		if allocated < partBuffers {
			select {
			case buf = <-free:
			default:
				buf = make([]byte, partSize)
				allocated++
			}
		} else {
			buf = <-free
		}
		if err := u.failed(); err != nil {
			break
		}
		n, err := fill(r, buf)
		if err != nil && err != io.EOF {
			u.fail(fmt.Errorf("read: %w", err))
			cancel()
			break
		}
		if err == io.EOF {
			if n == 0 {
				break
			}
			last = true
		}
		data = buf[:n]
	}
	wg.Wait()
	if err := u.failed(); err != nil {
		return err
	}
	sort.Slice(u.parts, func(i, j int) bool { return *u.parts[i].PartNumber < *u.parts[j].PartNumber })
	_, err := u.t.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(u.t.bucket), Key: aws.String(u.key), UploadId: u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

func (u *upload) part(ctx context.Context, num int32, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, S3PartTimeout+time.Duration(len(data)>>20)*time.Second)
	defer cancel()
	out, err := u.t.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(u.t.bucket), Key: aws.String(u.key), UploadId: u.id,
		PartNumber: aws.Int32(num), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	}, u.t.dataOpts...)
	if err != nil {
		return fmt.Errorf("upload part %d: %w", num, err)
	}
	u.mu.Lock()
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	u.mu.Unlock()
	return nil
}

// fail keeps the first error: later ones are mostly the cancellation it
// caused.
func (u *upload) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
}

func (u *upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// abort discards the parts; it runs even when ctx is done, with its own
// bound, since leaving parts behind costs storage until a lifecycle rule
// removes them.
func (u *upload) abort(ctx context.Context, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := u.t.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.t.bucket), Key: aws.String(u.key), UploadId: u.id,
	}); err != nil {
		return fmt.Errorf("%w (abort multipart upload: %v)", cause, err)
	}
	return cause
}

func (t *s3Target) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(t.prefix + key)})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("get %s: %w: %v", t.url(key), ErrNotFound, err)
		}
		return nil, fmt.Errorf("get %s: %w", t.url(key), err)
	}
	return out.Body, nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var ae smithy.APIError
	return errors.As(err, &nsk) || (errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound"))
}

func (t *s3Target) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	_, err := t.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(t.prefix + key)})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", t.url(key), err)
	}
	return nil
}

func (t *s3Target) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(t.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(t.bucket), Prefix: aws.String(t.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", t.url(prefix), err)
		}
		for _, o := range page.Contents {
			obj := Object{Key: strings.TrimPrefix(aws.ToString(o.Key), t.prefix), Size: aws.ToInt64(o.Size)}
			if o.LastModified != nil {
				obj.Modified = *o.LastModified
			}
			out = append(out, obj)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
